"""Batch-norm folding: a convolution followed by batch norm becomes one convolution.

At inference, BatchNorm2d is an affine map per channel, ``y = (x - mean) / sqrt(var + eps) *
gamma + beta``, so it folds into the preceding convolution's weight and bias. Deployed
networks (ONNX, TFLite) run folded, so latency is measured on folded models and the export
ships them folded.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d equal (in eval mode) to ``bn(conv(x))``; the inputs are not modified.

    Raises:
        ValueError: ``bn`` does not match the convolution's output channels, or has no
            running statistics (``track_running_stats=False``).
    """
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise ValueError(f"fold_conv_bn needs (Conv2d, BatchNorm2d), got ({type(conv).__name__}, "
                         f"{type(bn).__name__})")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"batch norm has {bn.num_features} channels but the conv outputs {conv.out_channels}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("batch norm without running statistics cannot be folded")
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    with torch.no_grad():
        scale = bn.running_var.add(bn.eps).rsqrt()
        if bn.weight is not None:
            scale = scale * bn.weight
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        shift = (bias - bn.running_mean) * scale
        if bn.bias is not None:
            shift = shift + bn.bias
        folded.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        folded.bias.copy_(shift)
    return folded.to(conv.weight.device, conv.weight.dtype)


def _fold_sequential(seq: nn.Sequential) -> int:
    """Fold each (Conv2d, BatchNorm2d) pair of adjacent children in place; returns the count.
    Only nn.Sequential is folded: there, registration order is data-flow order."""
    names = list(seq._modules)
    count = 0
    for first, second in zip(names, names[1:]):
        conv, bn = seq._modules[first], seq._modules[second]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            seq._modules[first] = fold_conv_bn(conv, bn)
            seq._modules[second] = nn.Identity()
            count += 1
    return count


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A folded copy of ``model`` in eval mode: every BatchNorm2d that directly follows a
    Conv2d inside an nn.Sequential is merged into it and replaced by nn.Identity. The input
    model is left untouched. Batch norms that follow no convolution (none in this project's
    blocks) are kept, so the copy always computes the same function."""
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
    return folded


def count_batchnorms(model: nn.Module) -> int:
    """BatchNorm layers left in ``model`` (0 after folding any of this project's networks)."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
