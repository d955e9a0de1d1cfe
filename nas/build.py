"""Resolved ops -> a PyTorch model with exactly one module per op."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from nas import blocks
from nas.ops import OpInstance, se_channels, shuffle_splits


def _conv(op: OpInstance) -> nn.Module:
    return blocks.ConvBNAct(op.input[2], op.output[2], op.kernel, op.stride, act=op.act, bn=op.bn, bias=op.bias,
                            pad=op.pad)


def _ds(op: OpInstance) -> nn.Module:
    return blocks.DepthwiseSeparable(op.input[2], op.output[2], op.kernel, op.stride, act=op.act)


def _ir(op: OpInstance) -> nn.Module:
    return blocks.InvertedResidual(
        op.input[2], op.output[2], op.kernel, op.stride, op.mid, expand=op.expand != 1,
        se_reduced=se_channels(op.mid) if op.se else 0, act=op.act, residual=op.residual)


def _shuffle(op: OpInstance) -> nn.Module:
    return blocks.ShuffleUnit(op.input[2], op.output[2], op.kernel, op.stride, op.mid, shuffle_splits(op))


def _fire(op: OpInstance) -> nn.Module:
    return blocks.Fire(op.input[2], op.squeeze, op.expand1x1, op.expand3x3, residual=op.residual, bn=op.bn)


def _maxpool(op: OpInstance) -> nn.Module:
    return nn.MaxPool2d(op.kernel, op.stride, op.pad, ceil_mode=op.ceil)


BUILDERS: dict[str, Callable[[OpInstance], nn.Module]] = {
    "conv": _conv,
    "ds": _ds,
    "ir": _ir,
    "shuffle": _shuffle,
    "fire": _fire,
    "maxpool": _maxpool,
    "skip": lambda op: nn.Identity(),
    "gap": lambda op: blocks.GlobalAvgPool(),
    "dropout": lambda op: nn.Dropout(op.p),
    "fc": lambda op: blocks.Classifier(op.input[2], op.output[2]),
    "nb201": lambda op: blocks.NB201Cell(op.input[2], op.ops),
    "res": lambda op: blocks.ResBasicBlock(op.input[2], op.output[2], op.stride),
    "bnact": lambda op: blocks.BNAct(op.input[2], op.act),
    "fbnet": lambda op: blocks.FBNetBlock(op.input[2], op.output[2], op.kernel, op.stride, op.mid, op.groups,
                                          op.residual),
}


def build_op(op: OpInstance) -> nn.Module:
    """The module for one op, taking (N, C, H, W) of ``op.input``."""
    try:
        builder = BUILDERS[op.type]
    except KeyError:
        raise ValueError(f"no module for op type {op.type!r}; expected one of {sorted(BUILDERS)}") from None
    return builder(op)


class Network(nn.Module):
    """A sequential network: ``layers[i]`` implements ``ops[i]``. Returns (N, classes) logits."""

    def __init__(self, ops: Iterable[OpInstance]):
        super().__init__()
        self.ops = tuple(ops)
        self.layers = nn.ModuleList(build_op(op) for op in self.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return torch.flatten(x, 1)


def build_model(ops: Iterable[OpInstance]) -> Network:
    return Network(ops)
