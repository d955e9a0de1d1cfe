"""SqueezeNet Fire modules, searched per module: squeeze width, expand width, share of 3x3
filters and bypass.

Eight Fire modules in four stages of two, as in SqueezeNet 1.1 (base squeeze/expand widths
16/128, 32/256, 48/384, 64/512), with a 3x3 max pool (ceil mode) after the stem and before
stages 2 and 3. Every module picks its squeeze width (0.5/1.0/1.5 x base, rounded to 8), its
expand width (the same factors), its share of 3x3 expand filters (0.25/0.5/0.75) and, after
the first module of a stage, a simple bypass (an identity shortcut, taken only when the
module keeps its channel count; otherwise the choice has no effect). Stem: a 3x3 conv to 64
channels (stride 2 without padding, or stride 1 with padding below 64 pixels); head:
dropout 0.5, a 1x1 conv to the classes, global pooling. Option ``bn`` adds batch norm.
Distinct architectures: 972^4 = 892,616,806,656 (about 8.9e11).

Reference networks: torchvision's SqueezeNet 1.0 and 1.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.ops import make_divisible
from nas.space import SearchSpace, is_small_input, register_reference, register_space, stem_stride
from nas.spec import ArchSpec, Block, Conv, Dropout, Fire, GlobalPool, MaxPool, SpecError
from search_spaces.common import checked_encoding, decoded_variants

# (max pool before the stage, modules, base squeeze, base expand)
SQUEEZENET_STAGES = ((False, 2, 16, 128), (True, 2, 32, 256), (True, 2, 48, 384), (False, 2, 64, 512))
FACTORS = (0.5, 1.0, 1.5)
PCT3X3 = (0.25, 0.5, 0.75)
POOL = MaxPool(3, 2, ceil=True)


def squeezenet_head(classes: int) -> tuple[Block, ...]:
    return (Dropout(0.5), Conv(1, 1, classes, bn=False, bias=True), GlobalPool())


def squeezenet_stem_conv(shape, kernel: int, width: int, bn: bool = False) -> Conv:
    """SqueezeNet's first conv is unpadded; small inputs get stride 1 and padding instead."""
    return Conv(kernel, stem_stride(shape), width, bn=bn, bias=not bn, valid=not is_small_input(shape))


@register_space
class SqueezeNetSpace(SearchSpace):
    name = "squeezenet"
    description = ("SqueezeNet Fire modules: per module squeeze and expand widths, share of "
                   "3x3 filters and bypass")

    def __init__(self, input_shape=(28, 28, 1), classes=10, *, bn: bool = False):
        super().__init__(input_shape, classes)
        if not isinstance(bn, bool):
            raise SpecError(f"squeezenet option bn must be true or false, got {bn!r}")
        self.bn = bn

    @property
    def num_stages(self) -> int:
        return len(SQUEEZENET_STAGES)

    def stem(self):
        return (squeezenet_stem_conv(self.input_shape, 3, 64, self.bn), POOL)

    def head(self):
        return squeezenet_head(self.classes)

    def _choices(self, i: int) -> dict[str, tuple]:
        _, modules, squeeze, expand = SQUEEZENET_STAGES[i]
        choices: dict[str, tuple] = {}
        for j in range(modules):
            choices[f"b{j}.squeeze"] = tuple(make_divisible(squeeze * f) for f in FACTORS)
            choices[f"b{j}.expand"] = tuple(make_divisible(expand * f) for f in FACTORS)
            choices[f"b{j}.pct3x3"] = PCT3X3
            if j > 0:
                choices[f"b{j}.bypass"] = (False, True)
        return choices

    def stage_parameters(self, i: int) -> dict[str, tuple]:
        return self._choices(i)

    def decode_stage(self, i: int, params: Mapping[str, Any]) -> tuple[Block, ...]:
        pool, modules, _, _ = SQUEEZENET_STAGES[i]
        blocks: list[Block] = [POOL] if pool else []
        for j in range(modules):
            expand = params[f"b{j}.expand"]
            expand3x3 = int(round(expand * params[f"b{j}.pct3x3"]))
            bypass = j > 0 and params[f"b{j}.bypass"] and params[f"b{j - 1}.expand"] == expand
            blocks.append(Fire(params[f"b{j}.squeeze"], expand - expand3x3, expand3x3, bypass=bypass, bn=self.bn))
        return tuple(blocks)

    def encode_stage(self, i: int, blocks: tuple[Block, ...]) -> dict[str, Any]:
        pool, modules, _, _ = SQUEEZENET_STAGES[i]
        fires = blocks[1:] if pool else blocks
        if len(fires) != modules or not all(isinstance(b, Fire) for b in fires):
            raise SpecError(f"expected {'a max pool and ' if pool else ''}{modules} Fire modules")
        params: dict[str, Any] = {}
        for j, fire in enumerate(fires):
            expand = fire.expand1x1 + fire.expand3x3
            params[f"b{j}.squeeze"] = fire.squeeze
            params[f"b{j}.expand"] = expand
            params[f"b{j}.pct3x3"] = min(PCT3X3, key=lambda p: abs(round(expand * p) - fire.expand3x3))
            if j > 0:
                params[f"b{j}.bypass"] = fire.bypass
        return checked_encoding(self, i, self._choices(i), params, blocks)

    def stage_variants(self, i: int):
        return decoded_variants(self, i, self._choices(i))


def _fires(table) -> tuple[Block, ...]:
    return tuple(POOL if row == "pool" else Fire(row[0], row[1], row[2]) for row in table)


def squeezenet1_0(shape, classes: int) -> ArchSpec:
    stem = (squeezenet_stem_conv(shape, 7, 96), POOL)
    stages = (_fires([(16, 64, 64), (16, 64, 64), (32, 128, 128)]),
              _fires(["pool", (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256)]),
              _fires(["pool", (64, 256, 256)]))
    return ArchSpec(shape, classes, stem, stages, squeezenet_head(classes))


def squeezenet1_1(shape, classes: int) -> ArchSpec:
    stem = (squeezenet_stem_conv(shape, 3, 64), POOL)
    stages = (_fires([(16, 64, 64), (16, 64, 64)]),
              _fires(["pool", (32, 128, 128), (32, 128, 128)]),
              _fires(["pool", (48, 192, 192), (48, 192, 192)]),
              _fires([(64, 256, 256), (64, 256, 256)]))
    return ArchSpec(shape, classes, stem, stages, squeezenet_head(classes))


register_reference("squeezenet1_0", "squeezenet")(squeezenet1_0)
register_reference("squeezenet1_1", "squeezenet")(squeezenet1_1)
