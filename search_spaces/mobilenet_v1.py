"""MobileNetV1 depthwise-separable convolutions, searched per stage by width and depth.

Stages follow MobileNetV1 (base widths 64/128/256/512/1024; 1/2/2/6/2 blocks; the first
block of every stage but the first has stride 2). Each stage picks its width
(0.5/0.75/1.0/1.25 x base x width_mult, rounded to 8) and its depth (base -1/+0/+1, at least
1); all blocks are 3x3. At width_mult 1.0: 8 x 12^4 = 165,888 distinct architectures.

Reference networks: MobileNetV1 at widths 1.0, 0.5 and 0.25.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.ops import make_divisible
from nas.space import SearchSpace, register_reference, register_space, stem_stride
from nas.spec import ArchSpec, Block, Conv, DepthwiseSeparable, GlobalPool, Linear, SpecError
from search_spaces.common import (
    checked_encoding,
    checked_width_mult,
    decoded_variants,
    single_choice_free,
)

# (base width, repeats, stride of the first block)
MOBILENET_V1_STAGES = ((64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 2))
WIDTH_FACTORS = (0.5, 0.75, 1.0, 1.25)


def mobilenet_v1_stem(shape, width: int) -> tuple[Block, ...]:
    return (Conv(3, stem_stride(shape), width),)


HEAD = (GlobalPool(), Linear())


@register_space
class MobileNetV1Space(SearchSpace):
    name = "mobilenet_v1"
    description = "MobileNetV1 depthwise-separable convs: per-stage width and depth"

    def __init__(self, input_shape=(28, 28, 1), classes=10, *, width_mult: float = 1.0):
        super().__init__(input_shape, classes)
        self.width_mult = checked_width_mult(self.name, width_mult)

    @property
    def num_stages(self) -> int:
        return len(MOBILENET_V1_STAGES)

    def stem(self):
        return mobilenet_v1_stem(self.input_shape, make_divisible(32 * self.width_mult))

    def head(self):
        return HEAD

    def _choices(self, i: int) -> dict[str, tuple]:
        base, repeats, _ = MOBILENET_V1_STAGES[i]
        depths = tuple(d for d in (repeats - 1, repeats, repeats + 1) if d >= 1)
        widths = tuple(sorted({make_divisible(base * self.width_mult * f) for f in WIDTH_FACTORS}))
        return {"width": widths, "depth": depths}

    def stage_parameters(self, i: int) -> dict[str, tuple]:
        return single_choice_free(self._choices(i))

    def decode_stage(self, i: int, params: Mapping[str, Any]) -> tuple[Block, ...]:
        stride = MOBILENET_V1_STAGES[i][2]
        return tuple(DepthwiseSeparable(3, stride if j == 0 else 1, params["width"])
                     for j in range(params["depth"]))

    def encode_stage(self, i: int, blocks: tuple[Block, ...]) -> dict[str, Any]:
        if not blocks or not all(isinstance(b, DepthwiseSeparable) for b in blocks):
            raise SpecError("expected a non-empty stage of depthwise-separable blocks")
        return checked_encoding(self, i, self._choices(i), {"width": blocks[0].out, "depth": len(blocks)}, blocks)

    def stage_variants(self, i: int):
        return decoded_variants(self, i, self._choices(i))


def mobilenet_v1(width_mult: float, shape, classes: int) -> ArchSpec:
    stages = tuple(
        tuple(DepthwiseSeparable(3, stride if j == 0 else 1, make_divisible(base * width_mult))
              for j in range(repeats))
        for base, repeats, stride in MOBILENET_V1_STAGES)
    return ArchSpec(shape, classes, mobilenet_v1_stem(shape, make_divisible(32 * width_mult)), stages, HEAD)


for _width in (1.0, 0.5, 0.25):
    register_reference(f"mobilenet_v1_{_width}", "mobilenet_v1")(
        lambda shape, classes, w=_width: mobilenet_v1(w, shape, classes))
