"""docs/benchmarks.md keeps up with benchmarks/: one section per script, each with its latest
figures dated (or said to be not yet measured), and no section for a script that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"


def scripts() -> set[str]:
    """The benchmarks: the scripts under benchmarks/ that run as programs (helpers they share,
    like default_tables.py, are imported and have no main block)."""
    return {path.name for path in (ROOT / "benchmarks").glob("*.py") if '__name__ == "__main__"' in path.read_text()}


def sections() -> dict[str, str]:
    parts = re.split(r"^## `([^`]+)`\n", PAGE.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_benchmark_has_a_section_and_every_section_a_benchmark():
    assert "default_tables.py" not in scripts()  # a shared helper, not a benchmark
    assert set(sections()) == scripts()


def test_every_section_says_what_how_and_its_latest_figures_with_a_date():
    for name, text in sections().items():
        assert "**Measures**" in text and "**Run:**" in text, name
        latest = re.search(r"\*\*Latest figures\**(.*)", text, flags=re.S)
        assert latest, f"{name}: no latest figures"
        assert re.search(r"\d{4}-\d{2}-\d{2}", latest.group(1)) or "not yet measured" in latest.group(1), name


def test_the_overview_table_lists_every_benchmark():
    table = PAGE.read_text().split("## ", 1)[0]
    assert {name for name in re.findall(r"\[`([^`]+\.py)`\]", table)} == scripts()
