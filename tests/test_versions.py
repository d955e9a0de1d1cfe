"""constraints-min.txt pins every dependency of setup.cfg at its floor, so that `make test-min`
tests exactly the floors setup.cfg claims."""

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _version(text: str) -> tuple[int, ...]:
    """'3.1' and '3.1.0' alike: four numbers, missing ones zero."""
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (4 - len(parts)))


def floors() -> dict[str, str]:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    lines = setup["options"]["install_requires"].split("\n")
    for extra in setup["options.extras_require"].values():
        lines += extra.split("\n")
    found = {}
    for line in filter(None, (line.strip() for line in lines)):
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]+\])?>=([0-9.]+)", line)
        assert match, f"setup.cfg requirement {line!r} has no plain >= floor"
        found[match[1].lower()] = match[2]
    return found


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints-min.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            found[name.lower()] = version
    return found


def test_every_floor_is_pinned_in_the_constraints_file_and_nothing_else():
    claimed, pinned = floors(), pins()
    assert set(claimed) == set(pinned), (set(claimed) ^ set(pinned))
    for name, floor in claimed.items():
        assert _version(pinned[name]) == _version(floor), \
            f"{name}: setup.cfg says >={floor}, constraints-min.txt tests {pinned[name]}"
