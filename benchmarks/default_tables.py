"""The latency table a benchmark uses when none is given: the space's 28x28x1 table in
latency_tables/ (the first by name when there are several)."""

from __future__ import annotations

import glob
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def default_table(space: str) -> str:
    found = sorted(glob.glob(str(ROOT / "latency_tables" / f"{space}-28x28x1-*.csv")))
    if not found:
        raise SystemExit(f"no latency table for {space} at 28x28x1 in latency_tables/; pass --table")
    return found[0]
