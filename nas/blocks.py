"""PyTorch building blocks of efficient CNNs.

These modules know nothing of specs, tables or Optuna: they take channel counts and options
as plain arguments. :mod:`nas.build` maps resolved ops onto them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; expected relu, relu6, hswish or none")


class ConvBNAct(nn.Sequential):
    """Conv (padding ``kernel // 2`` unless given) + optional BatchNorm + activation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, *, groups: int = 1,
                 act: str = "relu", bn: bool = True, bias: bool = False, pad: int | None = None):
        pad = kernel // 2 if pad is None else pad
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=bias)]
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(activation(act))
        super().__init__(*layers)


class DepthwiseSeparable(nn.Sequential):
    """MobileNetV1 block: depthwise KxK + BN + act, then pointwise 1x1 + BN + act."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, act: str = "relu"):
        super().__init__(
            ConvBNAct(cin, cin, kernel, stride, groups=cin, act=act),
            ConvBNAct(cin, cout, 1, act=act),
        )


class SqueezeExcite(nn.Module):
    """Channel attention: global pool, 1x1 reduce + ReLU, 1x1 expand + hard sigmoid."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = F.hardsigmoid(self.expand(F.relu(self.reduce(scale))))
        return x * scale


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [expand 1x1] -> depthwise KxK -> [SE] -> linear project 1x1,
    plus the identity when ``residual``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, mid: int, *,
                 expand: bool = True, se_reduced: int = 0, act: str = "relu6", residual: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        if expand:
            layers.append(ConvBNAct(cin, mid, 1, act=act))
        layers.append(ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act))
        if se_reduced:
            layers.append(SqueezeExcite(mid, se_reduced))
        layers.append(ConvBNAct(mid, cout, 1, act="none"))
        self.body = nn.Sequential(*layers)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit. ``split`` (stride 1, same channels): split the channels, transform
    one half, concat, shuffle. Otherwise both branches transform the whole input (branch 1:
    dw + pw; branch 2: pw + dw + pw): the downsampling unit, also used at stride 1 to change
    the channel count."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, mid: int, split: bool):
        super().__init__()
        half = cout // 2
        self.split = split
        branch_in = cin // 2 if split else cin
        if not split:
            self.branch1 = nn.Sequential(
                ConvBNAct(cin, cin, kernel, stride, groups=cin, act="none"),
                ConvBNAct(cin, half, 1, act="relu"),
            )
        self.branch2 = nn.Sequential(
            ConvBNAct(branch_in, mid, 1, act="relu"),
            ConvBNAct(mid, mid, kernel, stride, groups=mid, act="none"),
            ConvBNAct(mid, half, 1, act="relu"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.split:
            keep, work = x.chunk(2, dim=1)
            out = torch.cat((keep, self.branch2(work)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class Fire(nn.Module):
    """SqueezeNet Fire module: squeeze 1x1, expand 1x1 and 3x3 concatenated; optional bypass."""

    def __init__(self, cin: int, squeeze: int, expand1x1: int, expand3x3: int, *,
                 residual: bool = False, bn: bool = False):
        super().__init__()
        options = dict(act="relu", bn=bn, bias=not bn)
        self.squeeze = ConvBNAct(cin, squeeze, 1, **options)
        self.expand1x1 = ConvBNAct(squeeze, expand1x1, 1, **options) if expand1x1 else None
        self.expand3x3 = ConvBNAct(squeeze, expand3x3, 3, **options) if expand3x3 else None
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        branches = [m(s) for m in (self.expand1x1, self.expand3x3) if m is not None]
        out = torch.cat(branches, dim=1) if len(branches) > 1 else branches[0]
        return x + out if self.residual else out


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class Classifier(nn.Module):
    """Flatten a 1x1 feature map and apply a linear layer; returns (N, classes)."""

    def __init__(self, cin: int, classes: int):
        super().__init__()
        self.linear = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(x, 1))


class ReLUConvBN(nn.Sequential):
    """NAS-Bench-201 node operation: ReLU -> conv -> BN."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout))


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _nb201_edge(name: str, channels: int) -> nn.Module:
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity()
    if name == "none":
        return Zero()
    raise ValueError(f"unknown NAS-Bench-201 op {name!r}")


class NB201Cell(nn.Module):
    """NAS-Bench-201 cell: node j = sum over i < j of edge(i -> j)(node i); returns node 3.
    ``ops`` lists the edges in the standard order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2."""

    EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

    def __init__(self, channels: int, ops: tuple[str, ...]):
        super().__init__()
        self.edges = nn.ModuleList(_nb201_edge(name, channels) for name in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in (1, 2, 3):
            nodes.append(sum(edge(nodes[i]) for edge, (dst, i) in zip(self.edges, self.EDGES) if dst == j))
        return nodes[3]


class ResBasicBlock(nn.Module):
    """ResNet basic block in NAS-Bench-201's pre-activation form (its reduction block)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, stride)
        self.conv_b = ReLUConvBN(cout, cout, 3)
        if stride == 2:
            self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))
        elif cin != cout:
            self.shortcut = ReLUConvBN(cin, cout, 1)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class FBNetBlock(nn.Module):
    """FBNet ConvBlock: grouped 1x1 expand + ReLU, channel shuffle when grouped, depthwise KxK
    + ReLU, grouped 1x1 project (linear); BN after each conv; identity added when ``residual``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, mid: int, groups: int, residual: bool):
        super().__init__()
        self.expand = ConvBNAct(cin, mid, 1, groups=groups, act="relu")
        self.groups = groups
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid, act="relu")
        self.project = ConvBNAct(mid, cout, 1, groups=groups, act="none")
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x)
        if self.groups > 1:
            out = channel_shuffle(out, self.groups)
        out = self.project(self.depthwise(out))
        return x + out if self.residual else out


class BNAct(nn.Sequential):
    """Batch norm + activation (NAS-Bench-201's ``lastact``)."""

    def __init__(self, channels: int, act: str = "relu"):
        super().__init__(nn.BatchNorm2d(channels), activation(act))
