"""Architecture specs: the one value that describes a network.

An :class:`ArchSpec` is a frozen, hashable tree of block dataclasses made only of
primitives and tuples. It has a canonical JSON form (its SHA-256 prefix is the
``arch_id``) and a compact string form with a strict parser, e.g.::

    28x28x1>10|conv_k3_s1_c16_bn_relu6|ir_k3_s1_e1_c16_relu6|ir_k5_s2_e6_c24_se_hswish|conv_k1_s1_c64_bn_relu6,gap,fc

Sections are separated by ``|``: the header ``HxWxC>CLASSES``, the stem, one section per
stage, and the head; blocks inside a section are separated by ``,``.

The blocks and their parsers live in :mod:`nas.spec_blocks` and are imported from here. Specs
know nothing of shapes beyond their own fields: all shape arithmetic lives in :mod:`nas.ops`,
which :class:`ArchSpec` calls once on construction so that an impossible network is rejected
when it is made, with the block's location in the message. (The resolver reads blocks, not
ArchSpec, so the two modules do not import each other.)
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nas.ops import resolve
from nas.spec_blocks import (
    ACTIVATIONS,
    BLOCK_TYPES,
    KERNELS,
    MAX_BLOCKS,
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_SIDE,
    NB201_OPS,
    STRIDES,
    Block,
    BNAct,
    Conv,
    DepthwiseSeparable,
    Dropout,
    FBNetBlock,
    Fire,
    GlobalPool,
    InvertedResidual,
    Linear,
    MaxPool,
    NB201Cell,
    ResBlock,
    ShuffleUnit,
    Skip,
    SpecError,
    block_from_dict,
    block_from_string,
    check_block_count,
    check_int,
    check_shape,
    parse_shape,
    shape_text,
)

__all__ = ["ACTIVATIONS", "BLOCK_TYPES", "KERNELS", "MAX_BLOCKS", "MAX_CHANNELS", "MAX_CLASSES", "MAX_SIDE",
           "NB201_OPS", "STRIDES", "ArchSpec", "BNAct", "Block", "Conv", "DepthwiseSeparable", "Dropout",
           "FBNetBlock", "Fire", "GlobalPool", "InvertedResidual", "Linear", "MaxPool", "NB201Cell", "ResBlock",
           "ShuffleUnit", "Skip", "SpecError", "block_from_dict", "block_from_string", "parse_shape"]


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: input shape (H, W, C), class count, stem, stages and head."""

    input: tuple[int, int, int]
    classes: int
    stem: tuple[Block, ...]
    stages: tuple[tuple[Block, ...], ...]
    head: tuple[Block, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.input, tuple):
            raise SpecError(f"input must be (H, W, C) positive integers, got {self.input!r}")
        check_shape("input", self.input)
        check_int("spec", "classes", self.classes, minimum=1, maximum=MAX_CLASSES)
        for name, section in (("stem", self.stem), ("head", self.head)):
            self._check_blocks(name, section)
        if not isinstance(self.stages, tuple):
            raise SpecError(f"stages must be a tuple of stages, got {type(self.stages).__name__}")
        for i, stage in enumerate(self.stages):
            self._check_blocks(f"stages[{i}]", stage)
        check_block_count(len(self.stem) + len(self.head) + sum(len(stage) for stage in self.stages))
        if not self.head:
            raise SpecError("head must hold at least the classifier, got no blocks")
        resolve(self)  # shape checks live with the shape arithmetic

    @staticmethod
    def _check_blocks(name: str, blocks: Any) -> None:
        if not isinstance(blocks, tuple):
            raise SpecError(f"{name} must be a tuple of blocks, got {type(blocks).__name__}")
        for j, block in enumerate(blocks):
            if not isinstance(block, Block):
                raise SpecError(f"{name}[{j}] must be a block, got {block!r}")

    # ---- traversal

    def sections(self) -> list[tuple[str, tuple[Block, ...]]]:
        """(location, blocks) for the stem, each stage and the head, in order."""
        return ([("stem", self.stem)]
                + [(f"stages[{i}]", stage) for i, stage in enumerate(self.stages)]
                + [("head", self.head)])

    def blocks(self) -> list[tuple[str, Block]]:
        """Every block with its location, e.g. ``("stages[1][0]", InvertedResidual(...))``."""
        return [(f"{where}[{j}]", block) for where, section in self.sections()
                for j, block in enumerate(section)]

    # ---- JSON

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": list(self.input),
            "classes": self.classes,
            "stem": [b.to_dict() for b in self.stem],
            "stages": [[b.to_dict() for b in stage] for stage in self.stages],
            "head": [b.to_dict() for b in self.head],
        }

    def to_json(self, indent: int | None = None) -> str:
        """Canonical JSON (sorted keys, no spaces) unless ``indent`` asks for a readable form."""
        if indent is None:
            return self._canonical_json
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    # cached_property stores into the instance __dict__, which a frozen dataclass allows;
    # the cache is not a field, so equality and hashing ignore it.
    @functools.cached_property
    def _canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @functools.cached_property
    def arch_id(self) -> str:
        """Stable 16-hex-digit hash of the canonical JSON."""
        return hashlib.sha256(self._canonical_json.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: Any) -> ArchSpec:
        if not isinstance(data, Mapping):
            raise SpecError(f"a spec must be a JSON object, got {type(data).__name__}")
        expected = {"input", "classes", "stem", "stages", "head"}
        unknown = sorted(set(data) - expected)
        if unknown:
            raise SpecError(f"unknown spec field(s) {unknown}; expected {sorted(expected)}")
        missing = sorted(expected - set(data))
        if missing:
            raise SpecError(f"spec is missing field(s) {missing}")
        shape = data["input"]
        if isinstance(shape, str):
            shape = parse_shape(shape)
        if not isinstance(shape, (list, tuple)):
            raise SpecError(f"input must be [H, W, C], got {shape!r}")
        for name in ("stem", "head", "stages"):
            if not isinstance(data[name], list):
                raise SpecError(f"{name} must be a list, got {data[name]!r}")
        check_block_count(len(data["stem"]) + len(data["head"])
                           + sum(len(stage) if isinstance(stage, list) else 1 for stage in data["stages"]))
        stages = []
        for i, stage in enumerate(data["stages"]):
            if not isinstance(stage, list):
                raise SpecError(f"stages[{i}] must be a list of blocks, got {stage!r}")
            stages.append(tuple(block_from_dict(b, f"stages[{i}][{j}]") for j, b in enumerate(stage)))
        return cls(
            input=tuple(shape),
            classes=data["classes"],
            stem=tuple(block_from_dict(b, f"stem[{j}]") for j, b in enumerate(data["stem"])),
            stages=tuple(stages),
            head=tuple(block_from_dict(b, f"head[{j}]") for j, b in enumerate(data["head"])),
        )

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"spec is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_record(cls, text: Any, what: str) -> ArchSpec:
        """The spec a study recorded (as JSON) for ``what``, e.g. ``"trial 7"``; a SpecError
        naming it when the record has none or an invalid one."""
        if not isinstance(text, str):
            raise SpecError(f"{what} has no recorded spec")
        try:
            return cls.from_json(text)
        except SpecError as exc:
            raise SpecError(f"{what}: its recorded spec is invalid: {exc}") from None

    # ---- string form

    def to_string(self) -> str:
        header = f"{shape_text(self.input)}>{self.classes}"
        sections = [",".join(b.to_string() for b in blocks) for _, blocks in self.sections()]
        return "|".join([header, *sections])

    @classmethod
    def from_string(cls, text: str) -> ArchSpec:
        parts = text.strip().split("|")
        if len(parts) < 3:
            raise SpecError(f"a spec string needs at least header|stem|head sections, got {text!r}")
        header = re.fullmatch(r"(\d+x\d+x\d+)>(\d{1,9})", parts[0].strip())
        if not header:
            raise SpecError(f"spec string header must look like 28x28x1>10, got {parts[0]!r}")
        check_block_count(text.count(",") + len(parts) - 1)

        def section(raw: str, where: str) -> tuple[Block, ...]:
            raw = raw.strip()
            if not raw:
                return ()
            return tuple(block_from_string(tok, f"{where}[{j}]") for j, tok in enumerate(raw.split(",")))

        return cls(
            input=parse_shape(header.group(1)),
            classes=int(header.group(2)),
            stem=section(parts[1], "stem"),
            stages=tuple(section(p, f"stages[{i}]") for i, p in enumerate(parts[2:-1])),
            head=section(parts[-1], "head"),
        )

    def __str__(self) -> str:
        return self.to_string()
