"""The NAS-Bench-201 cell space: one cell genotype shared by all 15 cells of a fixed ResNet-like
skeleton, 5 ops on each of the cell's 6 edges (5^6 = 15,625 architectures).

Skeleton (NAS-Bench-201's ``TinyNetwork`` with C=16, N=5): a 3x3 conv to 16 channels + BN
(no activation); 5 cells at 16 channels, a residual reduction block (ResNet basic block,
stride 2) to 32, 5 cells, a reduction block to 64, 5 cells; then BN + ReLU, global pooling and
a linear classifier. The default input is CIFAR's 32x32x3 with 10 classes; like every space it
takes any input shape and class count (inputs of 64 pixels and more get a stride-2 stem, as in
the other spaces; NAS-Bench-201 itself never defines them).

A cell has 4 nodes; node j sums its edges from every node i < j, and node 3 is the output.
Edges, in the order of the standard arch string, are 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

Isomorphic cells stay distinct architectures, as the benchmark indexes them; a cell whose
output node is cut off from its input outputs zeros (NAS-Bench-201's semantics).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

from nas.space import SearchSpace, register_space, stem_stride
from nas.spec import NB201_OPS, ArchSpec, Block, BNAct, Conv, GlobalPool, Linear, NB201Cell, ResBlock, SpecError

CIFAR = (32, 32, 3)
#: (destination node, source node) of each edge, in arch-string order
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
PARAM_NAMES = tuple(f"e{dst}_{src}" for dst, src in EDGES)
STAGE_WIDTHS = (16, 32, 64)
CELLS_PER_STAGE = 5

_NODE = re.compile(r"\|([^|]*)\|")


def parse_arch_str(text: str) -> tuple[str, ...]:
    """The 6 edge ops of a standard NAS-Bench-201 arch string, in :data:`EDGES` order.

    Raises:
        SpecError: the string is not ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` with known ops.
    """
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise SpecError(f"a NAS-Bench-201 arch string has 3 nodes separated by '+', got {text!r}")
    ops: list[str] = []
    for j, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise SpecError(f"node {j} of arch string {text!r} must look like |op~0|...|, got {node!r}")
        edges = node[1:-1].split("|")
        if len(edges) != j:
            raise SpecError(f"node {j} of arch string {text!r} needs {j} edge(s), got {len(edges)}")
        for i, edge in enumerate(edges):
            op, _, source = edge.partition("~")
            if source != str(i):
                raise SpecError(f"edge {edge!r} of node {j} must come from node {i} (write {op}~{i})")
            if op not in NB201_OPS:
                raise SpecError(f"unknown NAS-Bench-201 op {op!r} in {text!r}; expected one of {list(NB201_OPS)}")
            ops.append(op)
    return tuple(ops)


def format_arch_str(ops: tuple[str, ...]) -> str:
    """The standard arch string of 6 edge ops given in :data:`EDGES` order."""
    if len(ops) != len(EDGES):
        raise SpecError(f"a NAS-Bench-201 cell has 6 edge ops, got {len(ops)}")
    nodes, k = [], 0
    for j in (1, 2, 3):
        nodes.append("|" + "|".join(f"{ops[k + i]}~{i}" for i in range(j)) + "|")
        k += j
    return "+".join(nodes)


def looks_like_arch_str(text: str) -> bool:
    """True for text shaped like a NAS-Bench-201 arch string (then parse it strictly)."""
    return text.strip().startswith("|") and "~" in text


@register_space
class NASBench201Space(SearchSpace):
    name = "nasbench201"
    description = "NAS-Bench-201 cells: one of 5 ops on each of the 6 edges of a shared cell (15,625 networks)"

    def __init__(self, input_shape=CIFAR, classes: int = 10):
        super().__init__(input_shape, classes)

    @property
    def num_stages(self) -> int:
        return 1  # the genotype is shared by every cell, so the whole body is one stage

    def stem(self) -> tuple[Block, ...]:
        return (Conv(3, stem_stride(self.input_shape), STAGE_WIDTHS[0], bn=True, act="none"),)

    def head(self) -> tuple[Block, ...]:
        return (BNAct("relu"), GlobalPool(), Linear())

    def stage_parameters(self, i: int) -> dict[str, tuple]:
        return {name: NB201_OPS for name in PARAM_NAMES}

    def body(self, ops: tuple[str, ...]) -> tuple[Block, ...]:
        """Cells and reduction blocks of the skeleton for one cell genotype."""
        cell = NB201Cell(tuple(ops))
        blocks: list[Block] = []
        for k, width in enumerate(STAGE_WIDTHS):
            if k:
                blocks.append(ResBlock(2, width))
            blocks.extend([cell] * CELLS_PER_STAGE)
        return tuple(blocks)

    def decode_stage(self, i: int, params: Mapping[str, Any]) -> tuple[Block, ...]:
        return self.body(tuple(params[name] for name in PARAM_NAMES))

    def encode_stage(self, i: int, blocks: tuple[Block, ...]) -> dict[str, Any]:
        cells = [b for b in blocks if isinstance(b, NB201Cell)]
        if not cells:
            raise SpecError("expected NAS-Bench-201 cells, found none")
        ops = cells[0].ops
        if tuple(blocks) != self.body(ops):
            raise SpecError("its blocks are not the NAS-Bench-201 skeleton (15 identical cells, "
                            "reduction blocks to 32 and 64 channels)")
        return dict(zip(PARAM_NAMES, ops))

    def stage_variants(self, i: int):
        for ops in itertools.product(NB201_OPS, repeat=len(EDGES)):
            yield self.body(ops)

    # ---- the standard arch string

    def from_arch_str(self, text: str) -> ArchSpec:
        """The spec of a standard arch string (``|nor_conv_3x3~0|+|...|``) in this space."""
        return self.decode({f"s1.{name}": op for name, op in zip(PARAM_NAMES, parse_arch_str(text))})

    def to_arch_str(self, spec: ArchSpec) -> str:
        """The standard arch string of a spec of this space; SpecError if it is not one."""
        params = self.encode(spec)
        return format_arch_str(tuple(params[f"s1.{name}"] for name in PARAM_NAMES))
