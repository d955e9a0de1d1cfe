"""The Once-for-All MobileNetV3 space (width 1.2): per layer kernel 3/5/7 and expansion
3/4/6, per stage depth 2/3/4.

A 24-channel 3x3 h-swish stem and a fixed 24-channel inverted residual (kernel 3, expansion
1, ReLU) come first. Five stages of widths 32/48/96/136/192 (strides 2/2/2/1/2) follow, with
ReLU in the first two and h-swish after, and squeeze-excite in stages 2, 4 and 5, as in
MobileNetV3. The head is a 1x1 conv to 1152 channels (h-swish), global pooling, a 1x1 conv
to 1536 channels with bias and no batch norm (h-swish) and the classifier. At 224x224x3
(and 160-208) these are exactly the ops of the public Once-for-All Note10 latency tables
(``nas latency import ..._lookup_table.yaml --format ofa``). Distinct architectures:
(9^2 + 9^3 + 9^4)^5 (about 2.2e19).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.space import SearchSpace, register_space, stem_stride
from nas.spec import Block, Conv, GlobalPool, InvertedResidual, Linear, SpecError
from search_spaces.common import checked_encoding

# (width, stride of the first layer, activation, squeeze-excite)
OFA_STAGES = ((32, 2, "relu", False), (48, 2, "relu", True), (96, 2, "hswish", False),
              (136, 1, "hswish", True), (192, 2, "hswish", True))
KERNELS = (3, 5, 7)
EXPANSIONS = (3, 4, 6)
DEPTHS = (2, 3, 4)
MIN_DEPTH, MAX_DEPTH = min(DEPTHS), max(DEPTHS)


def ofa_stem(shape) -> tuple[Block, ...]:
    return (Conv(3, stem_stride(shape), 24, act="hswish"), InvertedResidual(3, 1, 1, 24, act="relu"))


HEAD = (Conv(1, 1, 1152, act="hswish"), GlobalPool(), Conv(1, 1, 1536, bn=False, bias=True, act="hswish"), Linear())


def _layer(i: int, j: int, kernel: int, expand: int) -> InvertedResidual:
    width, stride, act, se = OFA_STAGES[i]
    return InvertedResidual(kernel, stride if j == 0 else 1, expand, width, se=se, act=act)


@register_space
class OFAMobileNetV3Space(SearchSpace):
    name = "ofa_mobilenet_v3"
    description = ("Once-for-All MobileNetV3 (w1.2): per layer kernel 3/5/7 x expansion 3/4/6, per stage "
                   "depth 2-4; widths 32/48/96/136/192, SE and h-swish per stage")

    @property
    def num_stages(self) -> int:
        return len(OFA_STAGES)

    def stem(self):
        return ofa_stem(self.input_shape)

    def head(self):
        return HEAD

    def stage_parameters(self, i: int) -> dict[str, tuple]:
        choices: dict[str, tuple] = {"depth": DEPTHS}
        for j in range(MAX_DEPTH):
            choices.update({f"b{j}.kernel": KERNELS, f"b{j}.expand": EXPANSIONS})
        return choices

    def decode_stage(self, i: int, params: Mapping[str, Any]) -> tuple[Block, ...]:
        return tuple(_layer(i, j, params[f"b{j}.kernel"], params[f"b{j}.expand"]) for j in range(params["depth"]))

    def encode_stage(self, i: int, blocks: tuple[Block, ...]) -> dict[str, Any]:
        if not MIN_DEPTH <= len(blocks) <= MAX_DEPTH or not all(isinstance(b, InvertedResidual) for b in blocks):
            raise SpecError(f"expected {MIN_DEPTH} to {MAX_DEPTH} inverted residual blocks")
        params: dict[str, Any] = {"depth": len(blocks)}
        for j in range(MAX_DEPTH):
            kept = j < len(blocks)
            params[f"b{j}.kernel"] = blocks[j].kernel if kept else KERNELS[0]
            params[f"b{j}.expand"] = blocks[j].expand if kept else EXPANSIONS[0]
        return checked_encoding(self, i, self.stage_parameters(i), params, blocks)

    def stage_variants(self, i: int):
        import itertools

        options = [(k, e) for k in KERNELS for e in EXPANSIONS]
        for depth in DEPTHS:
            for layers in itertools.product(options, repeat=depth):
                yield tuple(_layer(i, j, k, e) for j, (k, e) in enumerate(layers))

