"""The blocks a spec is made of: frozen dataclasses of primitives (a convolution, an inverted
residual, ...), their JSON and token forms with strict parsers, the limits on their fields,
input shapes (``HxWxC``) and :class:`SpecError`.

A block knows nothing of shapes beyond its own fields: the shape arithmetic lives in
:mod:`nas.ops`, which reads blocks, and :class:`nas.spec.ArchSpec`, the whole network, is
checked by it. Code outside the spec language imports these names from :mod:`nas.spec`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

ACTIVATIONS = ("relu", "relu6", "hswish", "none")
KERNELS = (1, 3, 5, 7)
STRIDES = (1, 2)
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class SpecError(ValueError):
    """A spec (or its JSON or string form) is invalid; the message names the field and value."""


# Limits far above any network this project can train or price, so that an absurd file or
# typo (a million blocks, 10^12 channels) is refused at once instead of exhausting memory.
MAX_CHANNELS = 16_384  # the widest layers of real CNNs have 2,048-4,096
MAX_SIDE = 8_192  # input pixels per side
MAX_CLASSES = 100_000  # ImageNet-21k has 21,841
MAX_BLOCKS = 1_000  # in the whole network (ResNet-152 has about 50 blocks)


# --------------------------------------------------------------------------------------
# field checks


def check_int(block: str, field: str, value: Any, *, minimum: int = 1, maximum: int = MAX_CHANNELS,
               choices=None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{block}.{field} must be an integer, got {value!r}")
    if choices is not None and value not in choices:
        raise SpecError(f"{block}.{field} must be one of {list(choices)}, got {value!r}")
    if value < minimum:
        raise SpecError(f"{block}.{field} must be >= {minimum}, got {value!r}")
    if value > maximum:
        raise SpecError(f"{block}.{field} must be <= {maximum}, got {value!r}")


def _check_bool(block: str, field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise SpecError(f"{block}.{field} must be true or false, got {value!r}")


def _check_act(block: str, value: Any) -> None:
    if value not in ACTIVATIONS:
        raise SpecError(f"{block}.act must be one of {list(ACTIVATIONS)}, got {value!r}")


def check_block_count(count: int) -> None:
    if count > MAX_BLOCKS:
        raise SpecError(f"the network has {count} blocks; at most {MAX_BLOCKS} are allowed")


def _canonical_number(value: float | int) -> float | int:
    """Integral floats become ints so that 6.0 and 6 give the same spec and arch_id."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


# --------------------------------------------------------------------------------------
# blocks
#
# Each block class declares TYPE (its name in JSON and strings) and TOKENS: for every
# non-boolean, non-activation field, the prefix of its string token (``k3`` = kernel 3).
# Boolean fields appear in the string as a bare flag when true; ``act`` as a bare name.


@dataclass(frozen=True)
class Block:
    TYPE: ClassVar[str] = ""
    TOKENS: ClassVar[dict[str, str]] = {}

    def validate(self) -> None:
        """Check the fields; blocks without fields have nothing to check."""

    def __post_init__(self) -> None:
        self.validate()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.TYPE}
        for name in _field_names(type(self)):
            value = getattr(self, name)
            data[name] = list(value) if isinstance(value, tuple) else value
        return data

    @classmethod
    def format_tuple(cls, value: tuple) -> str:
        return "-".join(str(v) for v in value)

    @classmethod
    def parse_tuple(cls, text: str) -> tuple:
        return tuple(text.split("-"))

    def to_string(self) -> str:
        tokens = [self.TYPE]
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "act":
                tokens.append(value)
            elif isinstance(value, bool):
                if value:
                    tokens.append(field.name)
            elif isinstance(value, tuple):
                tokens.append(self.TOKENS[field.name] + self.format_tuple(value))
            else:
                tokens.append(f"{self.TOKENS[field.name]}{value}")
        return "_".join(tokens)


@dataclass(frozen=True)
class Conv(Block):
    """Convolution + optional batch norm + activation (stems, heads, classifiers). Padding is
    ``kernel // 2`` unless ``valid`` (no padding, as in SqueezeNet's first conv)."""

    TYPE: ClassVar[str] = "conv"
    TOKENS: ClassVar[dict[str, str]] = {"kernel": "k", "stride": "s", "out": "c"}
    kernel: int
    stride: int
    out: int
    bn: bool = True
    bias: bool = False
    valid: bool = False
    act: str = "relu"

    def validate(self) -> None:
        check_int("conv", "kernel", self.kernel, choices=KERNELS)
        check_int("conv", "stride", self.stride, choices=STRIDES)
        check_int("conv", "out", self.out)
        _check_bool("conv", "bn", self.bn)
        _check_bool("conv", "bias", self.bias)
        _check_bool("conv", "valid", self.valid)
        _check_act("conv", self.act)


@dataclass(frozen=True)
class DepthwiseSeparable(Block):
    """MobileNetV1: depthwise KxK + BN + act, pointwise 1x1 + BN + act."""

    TYPE: ClassVar[str] = "ds"
    TOKENS: ClassVar[dict[str, str]] = {"kernel": "k", "stride": "s", "out": "c"}
    kernel: int
    stride: int
    out: int
    act: str = "relu"

    def validate(self) -> None:
        check_int("ds", "kernel", self.kernel, choices=(3, 5, 7))
        check_int("ds", "stride", self.stride, choices=STRIDES)
        check_int("ds", "out", self.out)
        _check_act("ds", self.act)


@dataclass(frozen=True)
class InvertedResidual(Block):
    """MobileNetV2 inverted residual; the identity shortcut is added when shapes allow."""

    TYPE: ClassVar[str] = "ir"
    TOKENS: ClassVar[dict[str, str]] = {"kernel": "k", "stride": "s", "expand": "e", "out": "c"}
    kernel: int
    stride: int
    expand: float
    out: int
    se: bool = False
    act: str = "relu6"

    def __post_init__(self) -> None:
        if isinstance(self.expand, (int, float)) and not isinstance(self.expand, bool):
            object.__setattr__(self, "expand", _canonical_number(self.expand))
        self.validate()

    def validate(self) -> None:
        check_int("ir", "kernel", self.kernel, choices=(3, 5, 7))
        check_int("ir", "stride", self.stride, choices=STRIDES)
        if isinstance(self.expand, bool) or not isinstance(self.expand, (int, float)):
            raise SpecError(f"ir.expand must be a number, got {self.expand!r}")
        if not 1 <= self.expand <= 12:
            raise SpecError(f"ir.expand must be between 1 and 12, got {self.expand!r}")
        check_int("ir", "out", self.out)
        _check_bool("ir", "se", self.se)
        _check_act("ir", self.act)


@dataclass(frozen=True)
class ShuffleUnit(Block):
    """ShuffleNetV2 unit: when it keeps its shape it splits the channels in half; otherwise
    (stride 2, or a change of width) both branches transform the whole input."""

    TYPE: ClassVar[str] = "shuffle"
    TOKENS: ClassVar[dict[str, str]] = {"kernel": "k", "stride": "s", "out": "c"}
    kernel: int
    stride: int
    out: int

    def validate(self) -> None:
        check_int("shuffle", "kernel", self.kernel, choices=(3, 5, 7))
        check_int("shuffle", "stride", self.stride, choices=STRIDES)
        check_int("shuffle", "out", self.out, minimum=2)
        if self.out % 2:
            raise SpecError(f"shuffle.out must be even (two branches), got {self.out}")


@dataclass(frozen=True)
class Fire(Block):
    """SqueezeNet Fire: squeeze 1x1, then expand 1x1 and 3x3 concatenated; optional bypass."""

    TYPE: ClassVar[str] = "fire"
    TOKENS: ClassVar[dict[str, str]] = {"squeeze": "sq", "expand1x1": "e1x", "expand3x3": "e3x"}
    squeeze: int
    expand1x1: int
    expand3x3: int
    bypass: bool = False
    bn: bool = False

    def validate(self) -> None:
        check_int("fire", "squeeze", self.squeeze)
        check_int("fire", "expand1x1", self.expand1x1, minimum=0)
        check_int("fire", "expand3x3", self.expand3x3, minimum=0)
        if self.expand1x1 + self.expand3x3 < 1:
            raise SpecError("fire.expand1x1 + fire.expand3x3 must be >= 1, got 0")
        _check_bool("fire", "bypass", self.bypass)
        _check_bool("fire", "bn", self.bn)


@dataclass(frozen=True)
class MaxPool(Block):
    TYPE: ClassVar[str] = "maxpool"
    TOKENS: ClassVar[dict[str, str]] = {"kernel": "k", "stride": "s", "pad": "p"}
    kernel: int
    stride: int
    pad: int = 0
    ceil: bool = False

    def validate(self) -> None:
        check_int("maxpool", "kernel", self.kernel, choices=(2, 3))
        check_int("maxpool", "stride", self.stride, choices=STRIDES)
        check_int("maxpool", "pad", self.pad, minimum=0)
        if self.pad > self.kernel // 2:
            raise SpecError(f"maxpool.pad must be <= kernel // 2, got {self.pad}")
        _check_bool("maxpool", "ceil", self.ceil)


@dataclass(frozen=True)
class Skip(Block):
    """Identity: a layer chosen away. Search spaces drop it from canonical specs."""

    TYPE: ClassVar[str] = "skip"


@dataclass(frozen=True)
class GlobalPool(Block):
    TYPE: ClassVar[str] = "gap"


@dataclass(frozen=True)
class Dropout(Block):
    TYPE: ClassVar[str] = "dropout"
    TOKENS: ClassVar[dict[str, str]] = {"p": "p"}
    p: float

    def __post_init__(self) -> None:
        if isinstance(self.p, (int, float)) and not isinstance(self.p, bool):
            object.__setattr__(self, "p", float(self.p))
        self.validate()

    def validate(self) -> None:
        if isinstance(self.p, bool) or not isinstance(self.p, float) or not 0 <= self.p < 1:
            raise SpecError(f"dropout.p must be a number in [0, 1), got {self.p!r}")


@dataclass(frozen=True)
class Linear(Block):
    """Fully connected classifier onto the class count (its input must be 1x1)."""

    TYPE: ClassVar[str] = "fc"


@dataclass(frozen=True)
class NB201Cell(Block):
    """NAS-Bench-201 cell: 4 nodes, 6 edges; ``ops`` lists the edges 1<-0, 2<-0, 2<-1, 3<-0,
    3<-1, 3<-2 (the order of the standard arch string). Each node-op is ReLU-conv-BN."""

    TYPE: ClassVar[str] = "nb201"
    TOKENS: ClassVar[dict[str, str]] = {"ops": "o"}
    # short names for the string form, where "_" separates tokens
    ALIASES: ClassVar[dict[str, str]] = {
        "none": "none", "skip_connect": "skip", "nor_conv_1x1": "c1", "nor_conv_3x3": "c3",
        "avg_pool_3x3": "ap3",
    }
    ops: tuple[str, ...]

    @classmethod
    def format_tuple(cls, value: tuple) -> str:
        return "-".join(cls.ALIASES[v] for v in value)

    @classmethod
    def parse_tuple(cls, text: str) -> tuple:
        names = {alias: name for name, alias in cls.ALIASES.items()}
        ops = []
        for alias in text.split("-"):
            if alias not in names:
                raise SpecError(f"nb201.ops: unknown op alias {alias!r}; expected one of {sorted(names)}")
            ops.append(names[alias])
        return tuple(ops)

    def __post_init__(self) -> None:
        if isinstance(self.ops, list):
            object.__setattr__(self, "ops", tuple(self.ops))
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.ops, tuple) or len(self.ops) != 6:
            raise SpecError(f"nb201.ops must list 6 edge ops, got {self.ops!r}")
        for op in self.ops:
            if op not in NB201_OPS:
                raise SpecError(f"nb201.ops: unknown op {op!r}; expected one of {list(NB201_OPS)}")


@dataclass(frozen=True)
class ResBlock(Block):
    """ResNet basic block (ReLU-conv-BN x2, shortcut avgpool+1x1 when shapes change):
    the NAS-Bench-201 reduction block."""

    TYPE: ClassVar[str] = "res"
    TOKENS: ClassVar[dict[str, str]] = {"stride": "s", "out": "c"}
    stride: int
    out: int

    def validate(self) -> None:
        check_int("res", "stride", self.stride, choices=STRIDES)
        check_int("res", "out", self.out)


@dataclass(frozen=True)
class BNAct(Block):
    """Batch norm + activation on its own (NAS-Bench-201's ``lastact`` before the pooling)."""

    TYPE: ClassVar[str] = "bnact"
    act: str = "relu"

    def validate(self) -> None:
        _check_act("bnact", self.act)


@dataclass(frozen=True)
class FBNetBlock(Block):
    """FBNet / HW-NAS-Bench ConvBlock: 1x1 conv (``groups``) to ``expand`` x the input width,
    channel shuffle when grouped, depthwise KxK (the stride), 1x1 conv (``groups``) to ``out``;
    BN after each conv, ReLU after the first two; the identity is added when shapes allow.
    Unlike the inverted residual, expansion 1 keeps its first 1x1 conv."""

    TYPE: ClassVar[str] = "fbn"
    TOKENS: ClassVar[dict[str, str]] = {"kernel": "k", "stride": "s", "expand": "e", "out": "c", "groups": "g"}
    kernel: int
    stride: int
    expand: int
    out: int
    groups: int = 1

    def validate(self) -> None:
        check_int("fbn", "kernel", self.kernel, choices=(3, 5, 7))
        check_int("fbn", "stride", self.stride, choices=STRIDES)
        check_int("fbn", "expand", self.expand)
        if self.expand > 12:
            raise SpecError(f"fbn.expand must be between 1 and 12, got {self.expand}")
        check_int("fbn", "out", self.out)
        check_int("fbn", "groups", self.groups, choices=(1, 2))
        if self.out % self.groups:
            raise SpecError(f"fbn.out must be divisible by groups {self.groups}, got {self.out}")


BLOCK_TYPES: dict[str, type[Block]] = {
    cls.TYPE: cls
    for cls in (
        Conv, DepthwiseSeparable, InvertedResidual, ShuffleUnit, Fire, MaxPool, Skip,
        GlobalPool, Dropout, Linear, NB201Cell, ResBlock, BNAct, FBNetBlock,
    )
}


def block_from_dict(data: Any, where: str) -> Block:
    """Build a block from its JSON dict; ``where`` locates it in error messages."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: a block must be an object, got {data!r}")
    kind = data.get("type")
    if kind not in BLOCK_TYPES:
        raise SpecError(f"{where}: unknown block type {kind!r}; expected one of {sorted(BLOCK_TYPES)}")
    cls = BLOCK_TYPES[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names - {"type"})
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {unknown} for block type {kind!r}; expected {sorted(names)}")
    kwargs = {k: v for k, v in data.items() if k != "type"}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a missing required field
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.name not in kwargs and f.default is dataclasses.MISSING)
        raise SpecError(f"{where}: block {kind!r} is missing field(s) {missing}") from exc
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


_NUMBER = r"(\d+(?:\.\d+)?)"


def block_from_string(text: str, where: str) -> Block:
    """Parse one block token such as ``ir_k5_s2_e6_c24_se_hswish``; strict."""
    parts = text.strip().split("_")
    kind = parts[0]
    if kind not in BLOCK_TYPES:
        raise SpecError(f"{where}: unknown block type {kind!r} in {text!r}; expected one of {sorted(BLOCK_TYPES)}")
    cls = BLOCK_TYPES[kind]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for token in parts[1:]:
        name, value = _match_token(cls, fields, token)
        if name is None:
            raise SpecError(f"{where}: unknown token {token!r} in {text!r} for block type {kind!r}")
        if name in kwargs:
            raise SpecError(f"{where}: field {name!r} given twice in {text!r}")
        kwargs[name] = value
    for name, field in fields.items():
        if name not in kwargs and isinstance(field.default, bool):
            kwargs[name] = False  # a boolean flag that is absent is false
    return block_from_dict({"type": kind, **kwargs}, where)


def _match_token(cls: type[Block], fields: dict, token: str) -> tuple[str | None, Any]:
    if "act" in fields and token in ACTIVATIONS:
        return "act", token
    if token in fields and isinstance(fields[token].default, bool):
        return token, True
    # longest prefix first so that "sq" is tried before "s"
    for name, prefix in sorted(cls.TOKENS.items(), key=lambda item: -len(item[1])):
        if not token.startswith(prefix):
            continue
        rest = token[len(prefix):]
        if name == "ops":
            return name, cls.parse_tuple(rest)
        match = re.fullmatch(_NUMBER, rest)
        if match:
            number = float(rest) if "." in rest else int(rest)
            return name, number
    return None, None


# --------------------------------------------------------------------------------------
# input shapes


def shape_text(shape: tuple[int, int, int]) -> str:
    return "x".join(str(v) for v in shape)


def parse_shape(text: str, what: str = "input") -> tuple[int, int, int]:
    """Parse ``HxWxC`` (e.g. ``28x28x1``) into a tuple; a clear error otherwise."""
    match = re.fullmatch(r"\s*(\d{1,9})x(\d{1,9})x(\d{1,9})\s*", str(text))
    if not match or min(int(v) for v in match.groups()) < 1:
        raise SpecError(f"{what} must look like HxWxC with positive integers (e.g. 28x28x1), got {text!r}")
    shape = tuple(int(v) for v in match.groups())
    check_shape(what, shape)
    return shape  # type: ignore[return-value]


def check_shape(what: str, shape: tuple) -> None:
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape) or len(shape) != 3:
        raise SpecError(f"{what} must be (H, W, C) positive integers, got {shape!r}")
    if max(shape[:2]) > MAX_SIDE or shape[2] > MAX_CHANNELS:
        raise SpecError(f"{what} {'x'.join(map(str, shape))} is too large: at most {MAX_SIDE} pixels per side and "
                        f"{MAX_CHANNELS} channels")
