"""A hybrid space: each stage picks its block family and that family's options.

Six stages (base widths 16/24/40/80/112/192, strides 1/2/2/2/1/2) after a 16-channel 3x3
stem. Each stage picks a family -- MobileNetV1 depthwise-separable (``ds``), MobileNetV2
inverted residual (``ir``), ShuffleNetV2 unit (``shuffle``) or SqueezeNet Fire (``fire``) --
a width (0.75/1.0/1.25 x base x width_mult, rounded to 8) and a depth (1-3), plus the
options of its family: kernel 3/5/7 (ds, ir, shuffle), expansion 3/6 and squeeze-excite
(ir), squeeze ratio 1/8 or 1/4 and bypass on the later modules (fire; Fire modules carry
batch norm here, and a stride-2 Fire stage starts with a 3x3 max pool). Options of the
families a stage did not pick have no effect. Head: a 1x1 conv (head_width, default 512),
global pooling, dropout 0.2 and the classifier. At width_mult 1.0: 18,429,319,839,744 (about
1.8e13) distinct architectures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.ops import make_divisible
from nas.space import SearchSpace, register_space, stem_stride
from nas.spec import (
    Block,
    Conv,
    DepthwiseSeparable,
    Dropout,
    Fire,
    GlobalPool,
    InvertedResidual,
    Linear,
    MaxPool,
    ShuffleUnit,
    SpecError,
)
from search_spaces.common import checked_encoding, checked_width_mult, decoded_variants

HYBRID_STAGES = ((16, 1), (24, 2), (40, 2), (80, 2), (112, 1), (192, 2))  # (base width, stride)
FAMILIES = ("ds", "ir", "shuffle", "fire")
WIDTH_FACTORS = (0.75, 1.0, 1.25)
DEPTHS = (1, 2, 3)
KERNELS = (3, 5, 7)
EXPANSIONS = (3, 6)
SQUEEZE_RATIOS = (0.125, 0.25)
POOL = MaxPool(3, 2, pad=1)  # same output size as a padded stride-2 conv
FAMILY_OF_BLOCK = {DepthwiseSeparable: "ds", InvertedResidual: "ir", ShuffleUnit: "shuffle", Fire: "fire"}


@register_space
class HybridSpace(SearchSpace):
    name = "hybrid"
    description = ("per stage a block family (depthwise-separable, inverted residual, shuffle "
                   "unit or Fire) with its options, width and depth")

    def __init__(self, input_shape=(28, 28, 1), classes=10, *, width_mult: float = 1.0, head_width: int = 512):
        super().__init__(input_shape, classes)
        if isinstance(head_width, bool) or not isinstance(head_width, int) or head_width < 8:
            raise SpecError(f"hybrid option head_width must be an integer >= 8, got {head_width!r}")
        self.width_mult = checked_width_mult(self.name, width_mult)
        self.head_width = head_width

    @property
    def num_stages(self) -> int:
        return len(HYBRID_STAGES)

    def stem(self):
        return (Conv(3, stem_stride(self.input_shape), make_divisible(16 * self.width_mult), act="relu6"),)

    def head(self):
        return (Conv(1, 1, self.head_width, act="relu6"), GlobalPool(), Dropout(0.2), Linear())

    def stage_parameters(self, i: int) -> dict[str, tuple]:
        base = HYBRID_STAGES[i][0]
        return {
            "family": FAMILIES,
            "width": tuple(sorted({make_divisible(base * self.width_mult * f) for f in WIDTH_FACTORS})),
            "depth": DEPTHS,
            "kernel": KERNELS,
            "expand": EXPANSIONS,
            "se": (False, True),
            "squeeze": SQUEEZE_RATIOS,
            "bypass": (False, True),
        }

    def decode_stage(self, i: int, params: Mapping[str, Any]) -> tuple[Block, ...]:
        stride = HYBRID_STAGES[i][1]
        family, width, depth, kernel = params["family"], params["width"], params["depth"], params["kernel"]
        strides = [stride] + [1] * (depth - 1)
        if family == "ds":
            return tuple(DepthwiseSeparable(kernel, s, width) for s in strides)
        if family == "ir":
            return tuple(InvertedResidual(kernel, s, params["expand"], width, se=params["se"]) for s in strides)
        if family == "shuffle":
            return tuple(ShuffleUnit(kernel, s, width) for s in strides)
        squeeze = make_divisible(width * params["squeeze"])
        fires = tuple(Fire(squeeze, width // 2, width - width // 2, bypass=j > 0 and params["bypass"], bn=True)
                      for j in range(depth))
        return ((POOL,) if stride == 2 else ()) + fires

    def encode_stage(self, i: int, blocks: tuple[Block, ...]) -> dict[str, Any]:
        choices = self.stage_parameters(i)
        params = {name: values[0] for name, values in choices.items()}
        body = blocks[1:] if blocks and isinstance(blocks[0], MaxPool) else blocks
        if not body:
            raise SpecError("a stage needs at least one block")
        first = body[0]
        family = FAMILY_OF_BLOCK.get(type(first))
        if family is None:
            raise SpecError(f"block type {first.TYPE!r} is not one of the families {list(FAMILIES)}")
        params.update(family=family, depth=len(body))
        if family == "fire":
            width = first.expand1x1 + first.expand3x3
            ratio = min(SQUEEZE_RATIOS, key=lambda r: abs(make_divisible(width * r) - first.squeeze))
            params.update(width=width, squeeze=ratio, bypass=len(body) > 1 and body[1].bypass)
        else:
            params.update(width=first.out, kernel=first.kernel)
            if family == "ir":
                params.update(expand=first.expand, se=first.se)
        return checked_encoding(self, i, choices, params, blocks)

    def stage_variants(self, i: int):
        return decoded_variants(self, i, self.stage_parameters(i))
