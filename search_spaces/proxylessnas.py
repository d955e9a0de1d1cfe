"""The ProxylessNAS mobile space: per layer, an inverted residual with kernel 3/5/7 and
expansion 3/6, or skip.

After a 32-channel 3x3 stem and a fixed 16-channel inverted residual (kernel 3, expansion
1), six stages of widths 24/40/80/96/192/320 (strides 2/2/2/1/2/1) hold 4/4/4/4/4/1 layers.
The first layer of a stage is always present (it changes the shape); later layers may be
skipped. The head is a 1x1 conv to 1280 channels, global pooling and the classifier; all
activations are ReLU6. At 224x224x3 this is exactly the space of the public ProxylessNAS
Pixel 1 latency table. Distinct architectures: 1554^5 x 6 (about 5.4e16).

Reference network: ``proxyless_mobile``, the released ProxylessNAS-mobile network (its first
stage is 32 channels wide, so it is not a member of the space).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.space import SearchSpace, register_reference, register_space, stem_stride
from nas.spec import ArchSpec, Block, Conv, GlobalPool, InvertedResidual, Linear, SpecError
from search_spaces.common import checked_encoding, layered_variants

# (width, layers, stride of the first layer)
PROXYLESS_STAGES = ((24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1))
KERNELS = (3, 5, 7)
EXPANSIONS = (3, 6)
ACT = "relu6"


def proxyless_stem(shape) -> tuple[Block, ...]:
    return (Conv(3, stem_stride(shape), 32, act=ACT), InvertedResidual(3, 1, 1, 16, act=ACT))


HEAD = (Conv(1, 1, 1280, act=ACT), GlobalPool(), Linear())


@register_space
class ProxylessNASSpace(SearchSpace):
    name = "proxylessnas"
    description = ("ProxylessNAS mobile space: per layer inverted residual kernel 3/5/7 x "
                   "expansion 3/6 or skip; widths 24/40/80/96/192/320")

    @property
    def num_stages(self) -> int:
        return len(PROXYLESS_STAGES)

    def stem(self):
        return proxyless_stem(self.input_shape)

    def head(self):
        return HEAD

    def _choices(self, i: int) -> dict[str, tuple]:
        choices: dict[str, tuple] = {"b0.kernel": KERNELS, "b0.expand": EXPANSIONS}
        for j in range(1, PROXYLESS_STAGES[i][1]):
            choices.update({f"b{j}.kernel": KERNELS, f"b{j}.expand": EXPANSIONS, f"b{j}.skip": (False, True)})
        return choices

    def stage_parameters(self, i: int) -> dict[str, tuple]:
        return self._choices(i)

    def decode_stage(self, i: int, params: Mapping[str, Any]) -> tuple[Block, ...]:
        width, layers, stride = PROXYLESS_STAGES[i]
        return tuple(
            InvertedResidual(params[f"b{j}.kernel"], stride if j == 0 else 1, params[f"b{j}.expand"], width, act=ACT)
            for j in range(layers) if j == 0 or not params[f"b{j}.skip"])

    def encode_stage(self, i: int, blocks: tuple[Block, ...]) -> dict[str, Any]:
        layers = PROXYLESS_STAGES[i][1]
        if not blocks or len(blocks) > layers or not all(isinstance(b, InvertedResidual) for b in blocks):
            raise SpecError(f"expected 1 to {layers} inverted residual blocks")
        params: dict[str, Any] = {}
        for j in range(layers):
            kept = j < len(blocks)
            params[f"b{j}.kernel"] = blocks[j].kernel if kept else KERNELS[0]
            params[f"b{j}.expand"] = blocks[j].expand if kept else EXPANSIONS[0]
            if j > 0:
                params[f"b{j}.skip"] = not kept
        return checked_encoding(self, i, self._choices(i), params, blocks)

    def stage_variants(self, i: int):
        width, layers, stride = PROXYLESS_STAGES[i]
        options = [(k, e) for k in KERNELS for e in EXPANSIONS]
        yield from layered_variants([InvertedResidual(k, stride, e, width, act=ACT) for k, e in options],
                                    [InvertedResidual(k, 1, e, width, act=ACT) for k, e in options], layers)


# The released ProxylessNAS-mobile network (proxyless_mobile.config.json), skipped layers
# (ZeroLayer) left out: (kernel, expansion, width, stride) per stage.
PROXYLESS_MOBILE = (
    ((5, 3, 32, 2), (3, 3, 32, 1)),
    ((7, 3, 40, 2), (3, 3, 40, 1), (5, 3, 40, 1), (5, 3, 40, 1)),
    ((7, 6, 80, 2), (5, 3, 80, 1), (5, 3, 80, 1), (5, 3, 80, 1)),
    ((5, 6, 96, 1), (5, 3, 96, 1), (5, 3, 96, 1), (5, 3, 96, 1)),
    ((7, 6, 192, 2), (7, 6, 192, 1), (7, 3, 192, 1), (7, 3, 192, 1)),
    ((7, 6, 320, 1),),
)


@register_reference("proxyless_mobile", "proxylessnas")
def proxyless_mobile(shape, classes: int) -> ArchSpec:
    stages = tuple(tuple(InvertedResidual(k, s, e, c, act=ACT) for k, e, c, s in stage) for stage in PROXYLESS_MOBILE)
    return ArchSpec(shape, classes, proxyless_stem(shape), stages, HEAD)
