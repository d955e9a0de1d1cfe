"""ShuffleNetV2 units, searched per layer (kernel 3/5/7 or skip) and per stage (width).

Three stages of at most 4, 8 and 4 units, as in ShuffleNetV2, after a 24-channel 3x3 stem
(stride 2 and a 3x3 max pool for large inputs; stride 1 and no pool below 64 pixels). The
first unit of a stage (stride 2) is always present and picks its kernel; every later unit
picks a kernel or is skipped (skipped units are dropped, so depth is searched too), as in
single-path one-shot search. Each stage picks its width among the x0.5, x1.0 and x1.5
networks' widths (times width_mult). At width_mult 1.0: 360 x 29,520 x 360 (about 3.8e9)
distinct architectures.

Reference networks: torchvision's ShuffleNetV2 x0.5 and x1.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.space import SearchSpace, is_small_input, register_reference, register_space, stem_stride
from nas.spec import ArchSpec, Block, Conv, GlobalPool, Linear, MaxPool, ShuffleUnit, SpecError
from search_spaces.common import checked_encoding, checked_width_mult, layered_variants

REPEATS = (4, 8, 4)
STAGE_WIDTHS = {0.5: (48, 96, 192), 1.0: (116, 232, 464), 1.5: (176, 352, 704)}
KERNELS = (3, 5, 7)


def shufflenet_v2_stem(shape) -> tuple[Block, ...]:
    conv = Conv(3, stem_stride(shape), 24)
    return (conv,) if is_small_input(shape) else (conv, MaxPool(3, 2, pad=1))


HEAD = (Conv(1, 1, 1024), GlobalPool(), Linear())


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


@register_space
class ShuffleNetV2Space(SearchSpace):
    name = "shufflenet_v2"
    description = "ShuffleNetV2 units: per layer kernel 3/5/7 or skip, per-stage width"

    def __init__(self, input_shape=(28, 28, 1), classes=10, *, width_mult: float = 1.0):
        super().__init__(input_shape, classes)
        self.width_mult = checked_width_mult(self.name, width_mult)

    @property
    def num_stages(self) -> int:
        return len(REPEATS)

    def stem(self):
        return shufflenet_v2_stem(self.input_shape)

    def head(self):
        return HEAD

    def _widths(self, i: int) -> tuple[int, ...]:
        return tuple(sorted({_even(w[i] * self.width_mult) for w in STAGE_WIDTHS.values()}))

    def _choices(self, i: int) -> dict[str, tuple]:
        choices: dict[str, tuple] = {"width": self._widths(i), "b0.kernel": KERNELS}
        for j in range(1, REPEATS[i]):
            choices[f"b{j}.kernel"] = KERNELS
            choices[f"b{j}.skip"] = (False, True)
        return choices

    def stage_parameters(self, i: int) -> dict[str, tuple]:
        return self._choices(i)

    def decode_stage(self, i: int, params: Mapping[str, Any]) -> tuple[Block, ...]:
        width = params["width"]
        blocks = [ShuffleUnit(params["b0.kernel"], 2, width)]
        for j in range(1, REPEATS[i]):
            if not params[f"b{j}.skip"]:
                blocks.append(ShuffleUnit(params[f"b{j}.kernel"], 1, width))
        return tuple(blocks)

    def encode_stage(self, i: int, blocks: tuple[Block, ...]) -> dict[str, Any]:
        if not blocks or not all(isinstance(b, ShuffleUnit) for b in blocks):
            raise SpecError("expected a non-empty stage of shuffle units")
        if len(blocks) > REPEATS[i]:
            raise SpecError(f"a stage holds at most {REPEATS[i]} units, got {len(blocks)}")
        params: dict[str, Any] = {"width": blocks[0].out, "b0.kernel": blocks[0].kernel}
        for j in range(1, REPEATS[i]):
            kept = j < len(blocks)
            params[f"b{j}.kernel"] = blocks[j].kernel if kept else KERNELS[0]
            params[f"b{j}.skip"] = not kept
        return checked_encoding(self, i, self._choices(i), params, blocks)

    def stage_variants(self, i: int):
        for width in self._widths(i):
            yield from layered_variants(
                [ShuffleUnit(k, 2, width) for k in KERNELS],
                [ShuffleUnit(k, 1, width) for k in KERNELS],
                REPEATS[i])


def shufflenet_v2(widths: tuple[int, ...], shape, classes: int) -> ArchSpec:
    stages = tuple(tuple(ShuffleUnit(3, 2 if j == 0 else 1, width) for j in range(repeats))
                   for width, repeats in zip(widths, REPEATS))
    return ArchSpec(shape, classes, shufflenet_v2_stem(shape), stages, HEAD)


for _mult in (0.5, 1.0):
    register_reference(f"shufflenet_v2_x{_mult}", "shufflenet_v2")(
        lambda shape, classes, m=_mult: shufflenet_v2(STAGE_WIDTHS[m], shape, classes))
