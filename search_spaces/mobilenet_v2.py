"""MobileNetV2 inverted residuals in a MnasNet-style factorized hierarchical space.

The network keeps MobileNetV2's seven stages (base widths 16/24/32/64/96/160/320, strides
1/2/2/2/1/2/1). Each stage picks, for all of its blocks at once: kernel 3/5/7, expansion
3/4/6 (the first stage keeps expansion 1, as in MobileNetV2), depth (base depth -1/+0/+1,
the first and last stages have one block), width (0.75/1.0/1.25 x base, rounded to 8) and
squeeze-excite on/off. At width_mult 1.0 this gives 48,201,307,559,424 (about 4.8e13)
distinct architectures (fewer than the parameter product where rounded widths coincide).

Reference networks: torchvision's MobileNetV2 at widths 1.0, 0.5 and 0.35 (the 1.0 and
width-matched variants are members of the space).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.ops import make_divisible
from nas.space import SearchSpace, register_reference, register_space, stem_stride
from nas.spec import ArchSpec, Block, Conv, Dropout, GlobalPool, InvertedResidual, Linear, SpecError
from search_spaces.common import (
    checked_encoding,
    checked_width_mult,
    decoded_variants,
    single_choice_free,
)

# (expansion, base width, repeats, stride of the first block) -- MobileNetV2's table
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1))

KERNELS = (3, 5, 7)
EXPANSIONS = (3, 4, 6)
WIDTH_FACTORS = (0.75, 1.0, 1.25)


def mobilenet_v2_stem(shape, width: int, act: str = "relu6") -> tuple[Block, ...]:
    return (Conv(3, stem_stride(shape), width, act=act),)


def mobilenet_v2_head(width: int, dropout: float = 0.2, act: str = "relu6") -> tuple[Block, ...]:
    return (Conv(1, 1, width, act=act), GlobalPool(), Dropout(dropout), Linear())


@register_space
class MobileNetV2Space(SearchSpace):
    name = "mobilenet_v2"
    description = ("MnasNet-style factorized space of MobileNetV2 inverted residuals: per stage "
                   "kernel 3/5/7, expansion 3/4/6, depth, width and squeeze-excite")

    def __init__(self, input_shape=(28, 28, 1), classes=10, *, width_mult: float = 1.0,
                 head_width: int = 1280, act: str = "relu6"):
        super().__init__(input_shape, classes)
        self.width_mult = checked_width_mult(self.name, width_mult)
        self.head_width = head_width
        self.act = act

    @property
    def num_stages(self) -> int:
        return len(MOBILENET_V2_STAGES)

    def stem(self):
        return mobilenet_v2_stem(self.input_shape, make_divisible(32 * self.width_mult), self.act)

    def head(self):
        return mobilenet_v2_head(self.head_width, act=self.act)

    def _choices(self, i: int) -> dict[str, tuple]:
        expand, base, repeats, _ = MOBILENET_V2_STAGES[i]
        first_or_last = i in (0, self.num_stages - 1)
        return {
            "kernel": KERNELS,
            "expand": (1,) if expand == 1 else EXPANSIONS,
            "depth": (repeats,) if first_or_last else (repeats - 1, repeats, repeats + 1),
            "width": tuple(sorted({make_divisible(base * self.width_mult * f) for f in WIDTH_FACTORS})),
            "se": (False, True),
        }

    def stage_parameters(self, i: int) -> dict[str, tuple]:
        return single_choice_free(self._choices(i))

    def decode_stage(self, i: int, params: Mapping[str, Any]) -> tuple[Block, ...]:
        p = {**{k: v[0] for k, v in self._choices(i).items()}, **params}
        stride = MOBILENET_V2_STAGES[i][3]
        return tuple(InvertedResidual(p["kernel"], stride if j == 0 else 1, p["expand"], p["width"],
                                      se=p["se"], act=self.act) for j in range(p["depth"]))

    def encode_stage(self, i: int, blocks: tuple[Block, ...]) -> dict[str, Any]:
        if not blocks or not all(isinstance(b, InvertedResidual) for b in blocks):
            raise SpecError("expected a non-empty stage of inverted residual blocks")
        first = blocks[0]
        params = {"kernel": first.kernel, "expand": first.expand, "depth": len(blocks),
                  "width": first.out, "se": first.se}
        return checked_encoding(self, i, self._choices(i), params, blocks)

    def stage_variants(self, i: int):
        return decoded_variants(self, i, self._choices(i))


def mobilenet_v2(width_mult: float, shape, classes: int) -> ArchSpec:
    """torchvision's MobileNetV2 (stem and stage widths scaled and rounded to 8; the last conv
    is widened only for width_mult > 1)."""
    stages = []
    for expand, base, repeats, stride in MOBILENET_V2_STAGES:
        width = make_divisible(base * width_mult)
        stages.append(tuple(InvertedResidual(3, stride if j == 0 else 1, expand, width)
                            for j in range(repeats)))
    return ArchSpec(shape, classes, mobilenet_v2_stem(shape, make_divisible(32 * width_mult)), tuple(stages),
                    mobilenet_v2_head(make_divisible(1280 * max(1.0, width_mult))))


for _width in (1.0, 0.5, 0.35):
    register_reference(f"mobilenet_v2_{_width}", "mobilenet_v2")(
        lambda shape, classes, w=_width: mobilenet_v2(w, shape, classes))
