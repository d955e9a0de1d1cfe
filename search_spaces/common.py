"""Helpers shared by the bundled search spaces."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from nas.spec import Block, SpecError


def product_dicts(choices: Mapping[str, tuple]) -> Iterator[dict[str, Any]]:
    """Every combination of ``choices`` as a dict."""
    names = list(choices)
    for values in itertools.product(*(choices[n] for n in names)):
        yield dict(zip(names, values))


def checked_width_mult(space: str, value: object) -> float:
    """A space's width multiplier option, validated."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.1 <= value <= 4:
        raise SpecError(f"{space} option width_mult must be in [0.1, 4], got {value!r}")
    return value


def decoded_variants(space, i: int, choices: Mapping[str, tuple]) -> Iterator[tuple[Block, ...]]:
    """The distinct stages that the product of stage ``i``'s ``choices`` decodes to."""
    seen = set()
    for params in product_dicts(choices):
        blocks = space.decode_stage(i, params)
        if blocks not in seen:
            seen.add(blocks)
            yield blocks


def single_choice_free(choices: Mapping[str, tuple]) -> dict[str, tuple]:
    """Drop parameters with a single choice: they are fixed, not searched."""
    return {name: tuple(values) for name, values in choices.items() if len(values) > 1}


def checked_encoding(space, i: int, choices: Mapping[str, tuple], params: dict[str, Any],
                     blocks: tuple[Block, ...]) -> dict[str, Any]:
    """Validate parameters guessed from a stage's blocks: every value must be a choice and
    decoding them must give back exactly those blocks. Returns the searchable parameters."""
    for name, value in params.items():
        if value not in choices[name]:
            raise SpecError(f"{name} = {value!r} is not one of {list(choices[name])}")
    decoded = space.decode_stage(i, params)
    if decoded != tuple(blocks):
        raise SpecError(f"its blocks do not follow the space's pattern (the nearest member is "
                        f"{','.join(b.to_string() for b in decoded)})")
    searchable = single_choice_free(choices)
    return {name: value for name, value in params.items() if name in searchable}


def layered_variants(first_choices: list[Block], later_choices: list[Block],
                     max_layers: int) -> Iterator[tuple[Block, ...]]:
    """Every canonical stage of per-layer choices where the first layer is always present and
    each later layer may be skipped (skipped layers are dropped, so only the depth and the
    kept layers' choices matter)."""
    for first in first_choices:
        for depth in range(max_layers):
            for rest in itertools.product(later_choices, repeat=depth):
                yield (first, *rest)
