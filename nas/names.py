"""Names that become paths (run names, study names, export and table names): one safe path
component each, so that nothing is ever written outside the folder the user named."""

from __future__ import annotations

import math
import re

# Letters, digits, '-', '_' and '.', starting with a letter or digit: no separators, no '..',
# no hidden files, nothing a shell or a file system treats specially.
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME_LENGTH = 100  # well under every file system's 255-byte limit, with room for suffixes


class UnsafeNameError(ValueError):
    """A name that cannot be used as a path component (the message says why)."""


def check_name(value: object, what: str) -> str:
    """``value`` if it is one safe path component, else a ValueError naming ``what``, the value
    and the rule."""
    rule = (f"one path component of letters, digits, '-', '_' or '.', starting with a letter or digit, "
            f"at most {MAX_NAME_LENGTH} characters")
    if not isinstance(value, str):
        raise UnsafeNameError(f"{what} must be a string ({rule}), got {value!r}")
    if len(value) > MAX_NAME_LENGTH:
        raise UnsafeNameError(f"{what} is {len(value)} characters long; expected {rule}")
    if not _SAFE.fullmatch(value) or ".." in value:
        raise UnsafeNameError(f"{what} must be {rule}, got {value!r}")
    return value


def is_finite_number(value: object) -> bool:
    """A real int or float (not a bool) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
