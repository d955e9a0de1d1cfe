"""docs/configuration.md is the code's own reference: every key, type, default and range."""

from pathlib import Path

from nas.config_reference import HELP, config_keys, reference_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_config_key_has_a_meaning_and_no_meaning_lacks_a_key():
    keys = {key for key, *_ in config_keys()}
    assert keys == set(HELP), (keys - set(HELP), set(HELP) - keys)


def test_the_reference_page_is_current():
    assert DOC.read_text() == reference_markdown(), "regenerate: python -m nas.config_reference > docs/configuration.md"


def test_ranges_in_the_reference_are_the_ones_the_config_enforces():
    rows = {key: allowed for key, _, _, allowed in config_keys()}
    assert rows["trials"] == "[1, 1000000]" and rows["dataset.val_fraction"] == "(0, 1)"
    assert rows["objective.netadapt.budget_ms"] == "(0, 1000000]"
