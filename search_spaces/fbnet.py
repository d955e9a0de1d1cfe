"""The FBNet space of HW-NAS-Bench: 22 searchable layers, each one of 9 ops (9^22 encodings).

The macro skeleton follows HW-NAS-Bench's FBNet space (Li et al., ICLR 2021; itself FBNet-v1's,
Wu et al., CVPR 2019), CIFAR-100 setting for inputs below 64 pixels (default 32x32x3, 100
classes) and ImageNet setting from 64 pixels:

- stem: 3x3 conv to 16 channels + BN + ReLU, stride 1 (ImageNet: 2);
- seven stages of 1, 4, 4, 4, 4, 4, 1 layers and widths 16, 24, 32, 64, 112, 184, 352, the
  first layer of a stage with stride 1, 1, 2, 2, 1, 2, 1 (ImageNet: 1, 2, 2, 2, 1, 2, 1);
- head: 1x1 conv to 1504 channels (ImageNet: 1984) + BN + ReLU, global average pooling and
  the classifier.

Each layer is one of (in HW-NAS-Bench's index order) ``k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1,
k5_e1_g2, k5_e3, k5_e6, skip``: an FBNet ConvBlock (:class:`nas.spec.FBNetBlock`) with kernel
``k``, expansion ``e`` and ``g`` groups in its 1x1 convs, or ``skip``. A skip is the identity
where the layer keeps its shape (canonical specs drop it) and a 1x1 conv + BN + ReLU to the
stage's width and stride where it does not (the first layer of stages 2-7).

Encoding: a list of 22 op indices, as in HW-NAS-Bench and HELP's ``arch`` lists; on the
command line ``fbnet:[0,8,3,...]`` (see :meth:`FBNetSpace.from_text`). Skips inside a stage
are interchangeable (same shapes), so an encoding's canonical form lists a stage's skipped
layers last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nas.space import SearchSpace, is_small_input, register_space
from nas.spec import ArchSpec, Block, Conv, FBNetBlock, GlobalPool, Linear, SpecError
from search_spaces.common import checked_encoding

CIFAR100 = (32, 32, 3)
#: the 9 ops of a layer, in HW-NAS-Bench's index order: name -> (kernel, expansion, groups)
OPS: dict[str, tuple[int, int, int] | None] = {
    "k3_e1": (3, 1, 1), "k3_e1_g2": (3, 1, 2), "k3_e3": (3, 3, 1), "k3_e6": (3, 6, 1),
    "k5_e1": (5, 1, 1), "k5_e1_g2": (5, 1, 2), "k5_e3": (5, 3, 1), "k5_e6": (5, 6, 1), "skip": None,
}
OP_NAMES = tuple(OPS)
STEM_WIDTH = 16
#: (width, layers) per stage; 22 layers in all
STAGES = ((16, 1), (24, 4), (32, 4), (64, 4), (112, 4), (184, 4), (352, 1))
LAYERS = sum(n for _, n in STAGES)
SMALL_STRIDES = (1, 1, 2, 2, 1, 2, 1)  # CIFAR-100 setting
LARGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)  # ImageNet setting
SMALL_HEAD, LARGE_HEAD = 1504, 1984
PREFIX = "fbnet:"


@register_space
class FBNetSpace(SearchSpace):
    name = "fbnet"
    description = ("HW-NAS-Bench FBNet space: 22 layers x 9 ops (FBNet ConvBlocks k3/k5, expansion "
                   "1/3/6, 2 groups, or skip); widths 16-352")

    def __init__(self, input_shape=CIFAR100, classes: int = 100):
        super().__init__(input_shape, classes)
        small = is_small_input(self.input_shape)
        self.strides = SMALL_STRIDES if small else LARGE_STRIDES
        self.head_width = SMALL_HEAD if small else LARGE_HEAD

    @property
    def num_stages(self) -> int:
        return len(STAGES)

    def stem(self) -> tuple[Block, ...]:
        return (Conv(3, 1 if is_small_input(self.input_shape) else 2, STEM_WIDTH, act="relu"),)

    def head(self) -> tuple[Block, ...]:
        return (Conv(1, 1, self.head_width, act="relu"), GlobalPool(), Linear())

    def stage_parameters(self, i: int) -> dict[str, tuple]:
        return {f"b{j}.op": OP_NAMES for j in range(STAGES[i][1])}

    def _input_width(self, i: int) -> int:
        return STEM_WIDTH if i == 0 else STAGES[i - 1][0]

    def layer_block(self, i: int, j: int, op: str) -> Block | None:
        """Layer ``j`` of stage ``i`` as a block, or None where it is the identity."""
        width, stride = STAGES[i][0], (self.strides[i] if j == 0 else 1)
        if OPS[op] is None:
            cin = self._input_width(i) if j == 0 else width
            return Conv(1, stride, width, act="relu") if (stride != 1 or cin != width) else None
        kernel, expand, groups = OPS[op]
        return FBNetBlock(kernel, stride, expand, width, groups)

    def decode_stage(self, i: int, params: Mapping[str, Any]) -> tuple[Block, ...]:
        blocks = (self.layer_block(i, j, params[f"b{j}.op"]) for j in range(STAGES[i][1]))
        return tuple(b for b in blocks if b is not None)

    def encode_stage(self, i: int, blocks: tuple[Block, ...]) -> dict[str, Any]:
        layers = STAGES[i][1]
        if len(blocks) > layers:
            raise SpecError(f"expected at most {layers} layers, got {len(blocks)}")
        names = [_op_name(b) for b in blocks] + ["skip"] * (layers - len(blocks))
        params = {f"b{j}.op": name for j, name in enumerate(names)}
        return checked_encoding(self, i, self.stage_parameters(i), params, blocks)

    def stage_variants(self, i: int):
        seen = set()
        for first in OP_NAMES:
            head = self.decode_stage(i, {"b0.op": first, **{f"b{j}.op": "skip" for j in range(1, STAGES[i][1])}})
            for rest in _sequences(STAGES[i][1] - 1):
                blocks = head + tuple(self.layer_block(i, 1, op) for op in rest)
                if blocks not in seen:
                    seen.add(blocks)
                    yield blocks

    # ---- HW-NAS-Bench's encoding

    def from_indices(self, indices) -> ArchSpec:
        """The network of 22 op indices (0-8 in :data:`OP_NAMES` order)."""
        if (not isinstance(indices, (list, tuple)) or len(indices) != LAYERS
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(OP_NAMES)
                           for v in indices)):
            raise SpecError(f"an FBNet encoding is a list of {LAYERS} op indices in 0..{len(OP_NAMES) - 1} "
                            f"({', '.join(f'{k}={n}' for k, n in enumerate(OP_NAMES))}), got {indices!r}")
        params, k = {}, 0
        for i, (_, layers) in enumerate(STAGES):
            for j in range(layers):
                params[f"s{i + 1}.b{j}.op"] = OP_NAMES[indices[k]]
                k += 1
        return self.decode(params)

    def to_indices(self, spec: ArchSpec) -> list[int]:
        """The canonical 22 op indices of a spec of this space (a stage's skips last)."""
        params = self.encode(spec)
        return [OP_NAMES.index(params[f"s{i + 1}.b{j}.op"]) for i, (_, n) in enumerate(STAGES) for j in range(n)]

    def from_text(self, text: str) -> ArchSpec:
        """``fbnet:[0,8,3,...]`` (or the bare JSON list) -> the network."""
        body = text.strip()
        body = body[len(PREFIX):] if body.startswith(PREFIX) else body
        try:
            indices = json.loads(body)
        except json.JSONDecodeError:
            raise SpecError(f"an FBNet architecture looks like {PREFIX}[0,8,3,...] with {LAYERS} op indices, "
                            f"got {text[:80]!r}") from None
        return self.from_indices(indices)


def _op_name(block: Block) -> str:
    if isinstance(block, Conv):
        return "skip"
    if isinstance(block, FBNetBlock):
        for name, choice in OPS.items():
            if choice == (block.kernel, block.expand, block.groups):
                return name
    raise SpecError(f"{block.to_string()!r} is not an FBNet layer (FBNet block k3/k5, e1/e3/e6, g1/g2, or skip)")


def _sequences(length: int):
    """Every sequence of up to ``length`` non-skip ops (skipped layers dropped)."""
    conv_ops = [name for name in OP_NAMES if OPS[name] is not None]
    frontier: list[tuple[str, ...]] = [()]
    yield ()
    for _ in range(length):
        frontier = [seq + (op,) for seq in frontier for op in conv_ops]
        yield from frontier
