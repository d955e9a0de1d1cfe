"""The resolver: the only place where shapes, channel counts, MACs and parameters are computed.

``resolve(spec)`` walks an :class:`~nas.spec.ArchSpec` and returns one :class:`OpInstance`
per block with every shape and option filled in. The latency tables, the MAC and parameter
counters, the model builder and the profiler all consume that tuple, so they cannot disagree
about what a network is.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nas.spec_blocks import (
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
    parse_shape,
)

if TYPE_CHECKING:  # the resolver reads blocks; ArchSpec (nas.spec) calls it when constructed
    from nas.spec import ArchSpec

Shape = tuple[int, int, int]  # H, W, C


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, at least ``divisor`` and never more than
    10% below ``value`` (the rule of the MobileNet reference code)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def se_channels(mid: int) -> int:
    """Squeeze-excite bottleneck width (MobileNetV3 / Once-for-All convention)."""
    return make_divisible(mid // 4, 8)


@dataclass(frozen=True)
class OpInstance:
    """One resolved operation. Fields that do not apply to the op type keep their defaults.

    ``input`` and ``output`` are (H, W, C). ``mid`` is the hidden width of an inverted residual
    (after expansion) or the branch width of a shuffle unit.
    """

    type: str
    input: Shape
    output: Shape
    kernel: int = 0
    stride: int = 1
    expand: float = 0
    mid: int = 0
    se: bool = False
    act: str = "none"
    residual: bool = False
    bn: bool = False
    bias: bool = False
    squeeze: int = 0
    expand1x1: int = 0
    expand3x3: int = 0
    pad: int = 0
    ceil: bool = False
    p: float = 0.0
    ops: tuple[str, ...] = ()
    groups: int = 1

    # Cached on the instance (as ArchSpec caches its JSON; not a field, so equality and hashing
    # ignore it): resolve() hands out the same op objects again, and a search prices every
    # candidate's ops from the table by key.
    @functools.cached_property
    def key(self) -> str:
        """The lookup-table key: type, shapes, then every non-default field, in field order.
        This is the only place an op key is formatted."""
        return _op_key(self)

    def fields(self) -> dict:
        """Every field as a plain value (shapes as ``HxWxC``, op lists joined by ``+``)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("input", "output"):
                value = "x".join(str(v) for v in value)
            elif field.name == "ops":
                value = "+".join(value)
            out[field.name] = value
        return out


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(OpInstance) if f.name not in ("type", "input", "output")}


@functools.lru_cache(maxsize=1 << 16)
def _op_key(op: OpInstance) -> str:
    parts = [op.type, "input:" + "x".join(map(str, op.input)), "output:" + "x".join(map(str, op.output))]
    for name, default in _DEFAULTS.items():
        value = getattr(op, name)
        if value == default:
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, tuple):
            value = "+".join(value)
        parts.append(f"{name}:{value}")
    return "-".join(parts)


def op_from_fields(fields: dict) -> OpInstance:
    """Inverse of :meth:`OpInstance.fields` (used by table loaders)."""
    kwargs = {}
    for field in dataclasses.fields(OpInstance):
        if field.name not in fields:
            continue
        value = fields[field.name]
        if field.name in ("input", "output"):
            value = parse_shape(value, field.name)
        elif field.name == "ops":
            value = tuple(v for v in str(value).split("+") if v)
        elif field.type in ("bool",):
            value = value if isinstance(value, bool) else str(value).lower() in ("1", "true")
        elif field.type == "int":
            value = int(value)
        elif field.type == "float":
            value = float(value)
            value = int(value) if field.name == "expand" and value.is_integer() else value
        kwargs[field.name] = value
    return OpInstance(**kwargs)


# --------------------------------------------------------------------------------------
# shape arithmetic


def conv_output(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def pool_output(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    if not ceil:
        return conv_output(size, kernel, stride, pad)
    out = math.ceil((size + 2 * pad - kernel) / stride) + 1
    if (out - 1) * stride >= size + pad:  # PyTorch: the last window must start inside the input
        out -= 1
    return out


def _spatial(shape: Shape, kernel: int, stride: int, pad: int | None = None) -> tuple[int, int]:
    pad = kernel // 2 if pad is None else pad
    return conv_output(shape[0], kernel, stride, pad), conv_output(shape[1], kernel, stride, pad)


def _resolve_conv(b: Conv, shape: Shape, classes: int) -> OpInstance:
    pad = 0 if b.valid else b.kernel // 2
    h, w = _spatial(shape, b.kernel, b.stride, pad)
    if h < 1 or w < 1:
        raise SpecError(f"conv: an unpadded {b.kernel}x{b.kernel} conv cannot take a {shape[0]}x{shape[1]} input")
    return OpInstance("conv", shape, (h, w, b.out), kernel=b.kernel, stride=b.stride,
                      act=b.act, bn=b.bn, bias=b.bias, pad=pad)


def _resolve_ds(b: DepthwiseSeparable, shape: Shape, classes: int) -> OpInstance:
    h, w = _spatial(shape, b.kernel, b.stride)
    return OpInstance("ds", shape, (h, w, b.out), kernel=b.kernel, stride=b.stride, act=b.act)


def _resolve_ir(b: InvertedResidual, shape: Shape, classes: int) -> OpInstance:
    h, w = _spatial(shape, b.kernel, b.stride)
    mid = shape[2] if b.expand == 1 else int(round(shape[2] * b.expand))
    residual = b.stride == 1 and shape[2] == b.out
    return OpInstance("ir", shape, (h, w, b.out), kernel=b.kernel, stride=b.stride, expand=b.expand,
                      mid=mid, se=b.se, act=b.act, residual=residual)


def shuffle_splits(op: OpInstance) -> bool:
    """A shuffle unit splits its input in half (the stride-1 form) when it keeps shape;
    otherwise both branches transform the whole input (the downsampling form)."""
    return op.stride == 1 and op.input[2] == op.output[2]


def _resolve_shuffle(b: ShuffleUnit, shape: Shape, classes: int) -> OpInstance:
    if shape[2] % 2 and b.stride == 1 and shape[2] == b.out:
        raise SpecError(f"shuffle: a channel-splitting unit needs an even channel count, got {shape[2]}")
    h, w = _spatial(shape, b.kernel, b.stride)
    return OpInstance("shuffle", shape, (h, w, b.out), kernel=b.kernel, stride=b.stride,
                      mid=b.out // 2, act="relu", bn=True)


def _resolve_fire(b: Fire, shape: Shape, classes: int) -> OpInstance:
    out = b.expand1x1 + b.expand3x3
    if b.bypass and shape[2] != out:
        raise SpecError(f"fire: bypass needs input channels == expand1x1 + expand3x3, got input "
                        f"{shape[2]} and output {out}")
    return OpInstance("fire", shape, (shape[0], shape[1], out), act="relu", residual=b.bypass,
                      bn=b.bn, bias=not b.bn, squeeze=b.squeeze, expand1x1=b.expand1x1,
                      expand3x3=b.expand3x3)


def _resolve_maxpool(b: MaxPool, shape: Shape, classes: int) -> OpInstance:
    h = pool_output(shape[0], b.kernel, b.stride, b.pad, b.ceil)
    w = pool_output(shape[1], b.kernel, b.stride, b.pad, b.ceil)
    if h < 1 or w < 1:
        raise SpecError(f"maxpool: a {b.kernel}x{b.kernel} pool cannot shrink a {shape[0]}x{shape[1]} input further")
    return OpInstance("maxpool", shape, (h, w, shape[2]), kernel=b.kernel, stride=b.stride,
                      pad=b.pad, ceil=b.ceil)


def _resolve_skip(b: Skip, shape: Shape, classes: int) -> OpInstance:
    return OpInstance("skip", shape, shape)


def _resolve_gap(b: GlobalPool, shape: Shape, classes: int) -> OpInstance:
    return OpInstance("gap", shape, (1, 1, shape[2]))


def _resolve_dropout(b: Dropout, shape: Shape, classes: int) -> OpInstance:
    return OpInstance("dropout", shape, shape, p=b.p)


def _resolve_linear(b: Linear, shape: Shape, classes: int) -> OpInstance:
    if shape[:2] != (1, 1):
        raise SpecError(f"fc: needs a 1x1 input (put gap before it), got {shape[0]}x{shape[1]}x{shape[2]}")
    return OpInstance("fc", shape, (1, 1, classes), bias=True)


def _resolve_nb201(b: NB201Cell, shape: Shape, classes: int) -> OpInstance:
    return OpInstance("nb201", shape, shape, act="relu", bn=True, ops=b.ops)


def _resolve_res(b: ResBlock, shape: Shape, classes: int) -> OpInstance:
    h, w = _spatial(shape, 3, b.stride)
    return OpInstance("res", shape, (h, w, b.out), kernel=3, stride=b.stride, act="relu", bn=True)


def _resolve_fbnet(b: FBNetBlock, shape: Shape, classes: int) -> OpInstance:
    if shape[2] % b.groups:
        raise SpecError(f"fbn: a {b.groups}-group 1x1 conv needs input channels divisible by {b.groups}, "
                        f"got {shape[2]}")
    h, w = _spatial(shape, b.kernel, b.stride)
    residual = b.stride == 1 and shape[2] == b.out
    return OpInstance("fbnet", shape, (h, w, b.out), kernel=b.kernel, stride=b.stride, expand=b.expand,
                      mid=shape[2] * b.expand, act="relu", residual=residual, bn=True, groups=b.groups)


def _resolve_bnact(b: BNAct, shape: Shape, classes: int) -> OpInstance:
    return OpInstance("bnact", shape, shape, act=b.act, bn=True)


_RESOLVERS = {
    Conv: _resolve_conv, DepthwiseSeparable: _resolve_ds, InvertedResidual: _resolve_ir,
    ShuffleUnit: _resolve_shuffle, Fire: _resolve_fire, MaxPool: _resolve_maxpool,
    Skip: _resolve_skip, GlobalPool: _resolve_gap, Dropout: _resolve_dropout,
    Linear: _resolve_linear, NB201Cell: _resolve_nb201, ResBlock: _resolve_res,
    BNAct: _resolve_bnact, FBNetBlock: _resolve_fbnet,
}


@functools.lru_cache(maxsize=1 << 16)
def resolve_block(block: Block, shape: Shape, classes: int) -> OpInstance:
    """Resolve one block applied to an input of ``shape`` (H, W, C)."""
    return _RESOLVERS[type(block)](block, shape, classes)


@functools.lru_cache(maxsize=1 << 14)
def resolve(spec: ArchSpec) -> tuple[OpInstance, ...]:
    """Resolve a whole spec into its ops, in execution order.

    Raises:
        SpecError: a block cannot take its input (the message names the block's location),
            or the network does not end in a 1x1xclasses output.
    """
    shape: Shape = spec.input
    ops = []
    for where, block in spec.blocks():
        try:
            op = resolve_block(block, shape, spec.classes)
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
        ops.append(op)
        shape = op.output
    if shape != (1, 1, spec.classes):
        raise SpecError(f"the network must end with a 1x1x{spec.classes} output (the class count), "
                        f"but it ends with {shape[0]}x{shape[1]}x{shape[2]}")
    return tuple(ops)


# --------------------------------------------------------------------------------------
# MACs and parameters (convolutions and linear layers; BN has 2 parameters per channel)


def _conv_params(cin: int, cout: int, kernel: int, groups: int = 1, bias: bool = False, bn: bool = True) -> int:
    return kernel * kernel * cin * cout // groups + (cout if bias else 0) + (2 * cout if bn else 0)


def _nb201_edge(op_name: str, channels: int) -> tuple[int, int]:
    """(params, MACs per output pixel) of one NAS-Bench-201 edge op (ReLU-conv-BN)."""
    if op_name in ("nor_conv_1x1", "nor_conv_3x3"):
        k = 1 if op_name == "nor_conv_1x1" else 3
        return _conv_params(channels, channels, k), k * k * channels * channels
    return 0, 0


def op_params(op: OpInstance) -> int:
    """Trainable parameters of one op (equals the built torch module's count)."""
    cin, cout = op.input[2], op.output[2]
    t = op.type
    if t == "conv":
        return _conv_params(cin, cout, op.kernel, bias=op.bias, bn=op.bn)
    if t == "ds":
        return _conv_params(cin, cin, op.kernel, groups=cin) + _conv_params(cin, cout, 1)
    if t == "ir":
        n = _conv_params(cin, op.mid, 1) if op.expand != 1 else 0
        n += _conv_params(op.mid, op.mid, op.kernel, groups=op.mid)
        if op.se:
            s = se_channels(op.mid)
            n += _conv_params(op.mid, s, 1, bias=True, bn=False) + _conv_params(s, op.mid, 1, bias=True, bn=False)
        return n + _conv_params(op.mid, cout, 1)
    if t == "shuffle":
        half, mid = cout // 2, op.mid
        branch_in = cin // 2 if shuffle_splits(op) else cin
        n = _conv_params(branch_in, mid, 1) + _conv_params(mid, mid, op.kernel, groups=mid) + _conv_params(mid, half, 1)
        if not shuffle_splits(op):
            n += _conv_params(cin, cin, op.kernel, groups=cin) + _conv_params(cin, half, 1)
        return n
    if t == "fire":
        bias, bn = op.bias, op.bn
        return (_conv_params(cin, op.squeeze, 1, bias=bias, bn=bn)
                + (_conv_params(op.squeeze, op.expand1x1, 1, bias=bias, bn=bn) if op.expand1x1 else 0)
                + (_conv_params(op.squeeze, op.expand3x3, 3, bias=bias, bn=bn) if op.expand3x3 else 0))
    if t == "fc":
        return cin * cout + cout
    if t == "nb201":
        return sum(_nb201_edge(name, cin)[0] for name in op.ops)
    if t == "res":
        n = _conv_params(cin, cout, 3) + _conv_params(cout, cout, 3)
        if op.stride == 2:
            n += _conv_params(cin, cout, 1, bn=False)
        elif cin != cout:
            n += _conv_params(cin, cout, 1)
        return n
    if t == "bnact":
        return 2 * cin
    if t == "fbnet":
        return (_conv_params(cin, op.mid, 1, groups=op.groups) + _conv_params(op.mid, op.mid, op.kernel, groups=op.mid)
                + _conv_params(op.mid, cout, 1, groups=op.groups))
    return 0  # maxpool, skip, gap, dropout


def op_macs(op: OpInstance) -> int:
    """Multiply-accumulates of one op's convolutions and linear layers."""
    (hi, wi, cin), (ho, wo, cout) = op.input, op.output
    out_px, in_px = ho * wo, hi * wi
    t = op.type
    if t == "conv":
        return op.kernel * op.kernel * cin * cout * out_px
    if t == "ds":
        return (op.kernel * op.kernel * cin + cin * cout) * out_px
    if t == "ir":
        n = cin * op.mid * in_px if op.expand != 1 else 0
        n += op.kernel * op.kernel * op.mid * out_px
        if op.se:
            n += 2 * op.mid * se_channels(op.mid)
        return n + op.mid * cout * out_px
    if t == "shuffle":
        half, mid = cout // 2, op.mid
        if shuffle_splits(op):
            return (cin // 2 * mid + op.kernel * op.kernel * mid + mid * half) * out_px
        return (cin * mid * in_px + op.kernel * op.kernel * mid * out_px + mid * half * out_px
                + (op.kernel * op.kernel * cin + cin * half) * out_px)
    if t == "fire":
        return (cin * op.squeeze + op.squeeze * op.expand1x1 + 9 * op.squeeze * op.expand3x3) * out_px
    if t == "fc":
        return cin * cout
    if t == "nb201":
        return sum(_nb201_edge(name, cin)[1] for name in op.ops) * out_px
    if t == "res":
        n = 9 * cin * cout * out_px + 9 * cout * cout * out_px
        if op.stride == 2 or cin != cout:
            n += cin * cout * out_px
        return n
    if t == "fbnet":
        return (cin * op.mid // op.groups * in_px + op.kernel * op.kernel * op.mid * out_px
                + op.mid * cout // op.groups * out_px)
    return 0


def count_params(ops) -> int:
    return sum(op_params(op) for op in ops)


def count_macs(ops) -> int:
    return sum(op_macs(op) for op in ops)
