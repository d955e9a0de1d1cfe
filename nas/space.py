"""Search spaces and reference networks: the base class, its contract and the registries.

A search space maps a fixed-length dict of primitive Optuna parameters (``s2.b0.kernel``) to
an :class:`~nas.spec.ArchSpec` and back. Every space is staged: its stem and head are fixed
for a given input shape and class count, and each stage's blocks depend only on that stage's
parameters (``s{i}.*``). That is what lets the base class count the distinct architectures
and enumerate every op the space can reach without sampling.

Spaces register themselves with :func:`register_space`; reference networks (specs with
published layer tables) with :func:`register_reference`. Both registries refuse duplicates.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import math
import random
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from nas.ops import OpInstance, Shape, resolve_block
from nas.spec import ArchSpec, Block, SpecError

Params = dict[str, Any]
Choices = tuple[Any, ...]

# Decoded stages kept per space (blocks are immutable, so specs may share them).
MAX_KEPT_STAGES = 1 << 16

FASHION_MNIST = (28, 28, 1)
IMAGENET = (224, 224, 3)


def is_small_input(shape: Shape) -> bool:
    """Inputs below 64 pixels (Fashion-MNIST, CIFAR) get stride-1 stems and no stem pooling,
    so that ImageNet-style networks keep a usable feature map."""
    return min(shape[0], shape[1]) < 64


def stem_stride(shape: Shape) -> int:
    return 1 if is_small_input(shape) else 2


def closest(name: str, options: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest option, or ''."""
    match = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


class SearchSpace(ABC):
    """Contract:

    - ``parameters()``: ordered ``{name: choices}``, the same names and choices in every
      trial (fixed length, so NSGA-II crossover sees a static space); choices are primitives.
    - ``decode(params) -> ArchSpec`` and ``encode(spec) -> params`` with
      ``decode(encode(spec)) == spec`` for every spec of the space. Different parameters may
      decode to the same spec (a skipped layer's kernel does not matter); specs are canonical.
    - ``stage_variants(i)``: every distinct block tuple stage ``i`` can decode to.
    Constructors do no I/O and no heavy work.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, input_shape: Shape = FASHION_MNIST, classes: int = 10):
        if (not isinstance(input_shape, tuple) or len(input_shape) != 3
                or not all(isinstance(v, int) and v > 0 for v in input_shape)):
            raise SpecError(f"input shape must be (H, W, C) positive integers, got {input_shape!r}")
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
            raise SpecError(f"classes must be a positive integer, got {classes!r}")
        self.input_shape = input_shape
        self.classes = classes
        self._parameters: dict[str, Choices] | None = None
        # decode() runs for every candidate the search considers: what it can reuse is kept
        self._routes: dict[str, tuple[int, str]] | None = None  # parameter -> (stage, name in it)
        self._stages: dict[tuple, tuple[Block, ...]] = {}  # (stage, its parameters) -> blocks
        self._ends: tuple[tuple[Block, ...], tuple[Block, ...]] | None = None  # stem, head

    # ---- what each space defines

    @abstractmethod
    def stem(self) -> tuple[Block, ...]:
        """The fixed stem for this input shape."""

    @abstractmethod
    def head(self) -> tuple[Block, ...]:
        """The fixed head (ending in the classifier)."""

    @abstractmethod
    def stage_parameters(self, i: int) -> dict[str, Choices]:
        """Stage ``i``'s parameters, names without the ``s{i}.`` prefix (``b0.kernel``)."""

    @property
    @abstractmethod
    def num_stages(self) -> int:
        """How many searchable stages."""

    @abstractmethod
    def decode_stage(self, i: int, params: Mapping[str, Any]) -> tuple[Block, ...]:
        """Stage ``i``'s blocks from its parameters (names without prefix)."""

    @abstractmethod
    def encode_stage(self, i: int, blocks: tuple[Block, ...]) -> dict[str, Any]:
        """Inverse of :meth:`decode_stage`; raises SpecError if the blocks are not in the space."""

    @abstractmethod
    def stage_variants(self, i: int) -> Iterable[tuple[Block, ...]]:
        """Every distinct block tuple stage ``i`` can decode to."""

    # ---- the rest follows

    def parameters(self) -> dict[str, Choices]:
        if self._parameters is None:
            params: dict[str, Choices] = {}
            for i in range(self.num_stages):
                for name, choices in self.stage_parameters(i).items():
                    params[f"s{i + 1}.{name}"] = tuple(choices)
            self._parameters = params
        return dict(self._parameters)

    def _split(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self._parameters is None:
            self.parameters()
        expected = self._parameters
        if self._routes is None:
            self._routes = {name: (int(stage[1:]) - 1, rest)
                            for name in expected for stage, rest in [name.split(".", 1)]}
        if len(params) != len(expected) or any(k not in expected for k in params):
            unknown = [k for k in params if k not in expected]
            if unknown:
                raise SpecError(f"unknown parameter {unknown[0]!r} for space {self.name!r}"
                                f"{closest(unknown[0], expected)}")
            missing = [k for k in expected if k not in params]
            raise SpecError(f"space {self.name!r} is missing parameter(s) {missing[:5]}"
                            f"{' ...' if len(missing) > 5 else ''}")
        per_stage: list[dict[str, Any]] = [{} for _ in range(self.num_stages)]
        for name, value in params.items():
            if value not in expected[name]:
                raise SpecError(f"parameter {name!r} = {value!r} is not a choice of space "
                                f"{self.name!r}; expected one of {list(expected[name])}")
            stage, rest = self._routes[name]
            per_stage[stage][rest] = value
        return per_stage

    def decode(self, params: Mapping[str, Any]) -> ArchSpec:
        if self._ends is None:
            self._ends = (self.stem(), self.head())
        if len(self._stages) > MAX_KEPT_STAGES:
            self._stages.clear()
        stages = []
        for i, stage_params in enumerate(self._split(params)):
            key = (i, *((k, v, type(v)) for k, v in stage_params.items()))  # True and 1 are equal keys
            if key not in self._stages:
                self._stages[key] = self.decode_stage(i, stage_params)
            stages.append(self._stages[key])
        return ArchSpec(self.input_shape, self.classes, self._ends[0], tuple(stages), self._ends[1])

    def encode(self, spec: ArchSpec) -> Params:
        if spec.input != self.input_shape or spec.classes != self.classes:
            raise SpecError(f"spec is for input {spec.input} with {spec.classes} classes, but this "
                            f"{self.name!r} space is for {self.input_shape} with {self.classes}")
        if spec.stem != self.stem() or spec.head != self.head():
            raise SpecError(f"spec's stem or head differs from the {self.name!r} space's")
        if len(spec.stages) != self.num_stages:
            raise SpecError(f"spec has {len(spec.stages)} stages; space {self.name!r} has {self.num_stages}")
        params: Params = {}
        for i, blocks in enumerate(spec.stages):
            try:
                stage = self.encode_stage(i, blocks)
            except SpecError as exc:
                raise SpecError(f"stages[{i}] is not in space {self.name!r}: {exc}") from None
            params.update({f"s{i + 1}.{k}": v for k, v in stage.items()})
        return params

    def contains(self, spec: ArchSpec) -> bool:
        try:
            return self.decode(self.encode(spec)) == spec
        except SpecError:
            return False

    def sample_params(self, rng: random.Random) -> Params:
        return {name: rng.choice(choices) for name, choices in self.parameters().items()}

    def sample(self, seed: int | random.Random | None = None) -> ArchSpec:
        """A random architecture (uniform over parameters); deterministic for a given seed."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        return self.decode(self.sample_params(rng))

    def size(self) -> int:
        """The number of distinct architectures."""
        return math.prod(len(set(self.stage_variants(i))) for i in range(self.num_stages))

    def reachable_ops(self) -> frozenset[OpInstance]:
        """Every distinct op any architecture of the space contains at this input shape: the
        set a latency table must cover."""
        ops: set[OpInstance] = set()
        shape = self.input_shape
        for block in self.stem():
            op = resolve_block(block, shape, self.classes)
            ops.add(op)
            shape = op.output
        frontier = {shape}
        for i in range(self.num_stages):
            variants = set(self.stage_variants(i))
            outputs: set[Shape] = set()
            for start in frontier:
                for blocks in variants:
                    shape = start
                    try:
                        for block in blocks:
                            op = resolve_block(block, shape, self.classes)
                            ops.add(op)
                            shape = op.output
                    except SpecError:
                        continue  # not a valid network; decode rejects it as well
                    outputs.add(shape)
            frontier = outputs
        for start in frontier:
            shape = start
            for block in self.head():
                op = resolve_block(block, shape, self.classes)
                ops.add(op)
                shape = op.output
        return frozenset(ops)

    def describe(self) -> str:
        return f"{self.name}: {self.description}"


# --------------------------------------------------------------------------------------
# registries

_SPACES: dict[str, type[SearchSpace]] = {}
_REFERENCES: dict[str, tuple[Callable[[Shape, int], ArchSpec], str]] = {}
_BUILTINS_LOADED = False
_BUILTINS_LOCK = threading.RLock()  # re-entrant: the spaces' modules may ask for the registry


def register_space(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator; a second space with the same name is an error."""
    if cls.name in _SPACES:
        raise ValueError(f"search space {cls.name!r} is already registered (by {_SPACES[cls.name].__module__})")
    _SPACES[cls.name] = cls
    return cls


def register_reference(name: str, space: str) -> Callable:
    """Decorator for ``fn(input_shape, classes) -> ArchSpec`` building a reference network;
    ``space`` names the family it belongs to."""

    def decorator(fn: Callable[[Shape, int], ArchSpec]) -> Callable[[Shape, int], ArchSpec]:
        if name in _REFERENCES:
            raise ValueError(f"reference network {name!r} is already registered")
        _REFERENCES[name] = (fn, space)
        return fn

    return decorator


def load_builtins() -> None:
    """Import the bundled ``search_spaces`` package, whose modules register themselves.

    The flag is set only once the import has finished, under a lock: a second thread (a
    worker in threads, a test) would otherwise see it set while the first is still importing
    and read an empty registry, and a failed import would leave it set."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    with _BUILTINS_LOCK:
        if not _BUILTINS_LOADED:
            importlib.import_module("search_spaces")
            _BUILTINS_LOADED = True


def list_spaces(pattern: str = "*") -> list[str]:
    load_builtins()
    return sorted(n for n in _SPACES if fnmatch.fnmatch(n, pattern))


def space_class(name: str) -> type[SearchSpace]:
    load_builtins()
    if name not in _SPACES:
        raise SpecError(f"unknown search space {name!r}{closest(name, _SPACES)}; "
                        f"expected one of {sorted(_SPACES)}")
    return _SPACES[name]


def get_space(name: str, input_shape: Shape = FASHION_MNIST, classes: int = 10, **options: Any) -> SearchSpace:
    return space_class(name)(input_shape, classes, **options)


def list_references(pattern: str = "*", space: str | None = None) -> list[str]:
    load_builtins()
    return sorted(n for n, (_, s) in _REFERENCES.items()
                  if fnmatch.fnmatch(n, pattern) and (space is None or s == space))


def reference_space(name: str) -> str:
    load_builtins()
    return _REFERENCES[name][1]


def get_reference(name: str, input_shape: Shape = FASHION_MNIST, classes: int = 10) -> ArchSpec:
    load_builtins()
    if name not in _REFERENCES:
        raise SpecError(f"unknown reference network {name!r}{closest(name, _REFERENCES)}; "
                        f"expected one of {sorted(_REFERENCES)}")
    return _REFERENCES[name][0](input_shape, classes)
