"""docs/guarantees.md names a test for every statement. Those tests must exist; a guarantee
may not rest on a test marked as expected to fail, and the closing "Not guaranteed yet"
section names only such tests (once one passes, its statement moves up)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "guarantees.md"
CITATION = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
NOT_YET = "## Not guaranteed yet"


def statements(text: str) -> list[str]:
    """The doc's bullet points, each with its indented continuation lines."""
    items: list[str] = []
    for line in text.splitlines():
        if line.startswith("- "):
            items.append(line)
        elif line.startswith("  ") and items:
            items[-1] += "\n" + line
    return items


def defined_tests(path: Path) -> dict[str, bool]:
    """The module-level tests of ``path``: name -> whether it is marked xfail."""
    tree = ast.parse(path.read_text())
    return {node.name: any("xfail" in ast.unparse(d) for d in node.decorator_list)
            for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def citation_problems(item: str, expected_to_fail: bool) -> list[str]:
    problems = []
    for file, name in CITATION.findall(item):
        path = ROOT / file
        tests = defined_tests(path) if path.is_file() else {}
        if name not in tests:
            problems.append(f"{file}::{name} does not exist")
        elif tests[name] != expected_to_fail:
            problems.append(f"{file}::{name} is {'not ' if expected_to_fail else ''}marked xfail, but the doc "
                            f"lists it {'among what is not guaranteed' if expected_to_fail else 'as a guarantee'}")
    return problems


def test_every_statement_names_an_existing_test_and_guarantees_rest_on_passing_ones():
    promised, not_yet = DOC.read_text().split(NOT_YET)
    problems = []
    for item in statements(promised):
        if not CITATION.search(item):
            problems.append(f"names no test: {item.splitlines()[0]}")
        problems += citation_problems(item, expected_to_fail=False)
    for item in statements(not_yet):
        problems += citation_problems(item, expected_to_fail=True)
    assert not problems, "\n".join(problems)
    assert len(statements(promised)) >= 15 and len(CITATION.findall(promised)) >= 25  # the parser saw them
