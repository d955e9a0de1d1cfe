"""The settings of ``nas verify``, their defaults and accepted ranges, and its error type.
Light to import: the command line reads the defaults for its help text."""

from __future__ import annotations

import math
from typing import Any

RESULT_FILE = "verify.json"  # the last verdict, in the run folder; report.html shows it
CACHE_FILE = "verify_cache.jsonl"  # one line per finished (architecture, seed, budget)

# (smallest, largest) accepted value of each setting: large enough for any real use, small
# enough that a typo (an extra zero, a negative sign) is refused before hours of training
LIMITS = {"picks": (1, 100), "epochs": (1, 1000), "seeds": (1, 50)}

# Affordable on 2 cores (docs/verify.md has the arithmetic): the quickstart's 3 picks and 3
# baselines, 2 seeds each, one epoch on all 60,000 Fashion-MNIST training images (11x the
# search's per-network budget) is 12 epochs of training, about 25-40 minutes; two would pass
# an hour.
DEFAULTS = {"picks": 3, "epochs": 1, "seeds": 2}


class VerifyError(ValueError):
    """A verification that cannot run as asked; the message names the bad value."""


def check_setting(name: str, value: Any) -> int:
    """``value`` as a whole number within :data:`LIMITS`; strings (from the command line) are
    parsed, so that ``--epochs 2.5``, ``inf`` or ``nan`` are refused by the same rule.

    Raises:
        VerifyError: naming the setting, the value and the accepted range.
    """
    low, high = LIMITS[name]
    number = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise VerifyError(f"--{name} must be a whole number in {low}..{high}, got {value!r}")
    return number
