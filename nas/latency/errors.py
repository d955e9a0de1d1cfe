"""Errors of the latency package (all ValueErrors, so callers that catch bad input catch them)."""

from __future__ import annotations


class LatencyTableError(ValueError):
    """A latency table file is missing, corrupt, truncated or inconsistent (the message names
    the file, the row or field, and what was expected)."""


class MissingOpsError(ValueError):
    """Ops the table has no latency for. ``keys`` lists them; ``command`` profiles them."""

    def __init__(self, keys: list[str], command: str, path: str | None = None, advice: str | None = None):
        self.keys = list(keys)
        self.command = command
        self.path = path
        shown = "\n  ".join(self.keys[:20])
        more = f"\n  ... and {len(self.keys) - 20} more" if len(self.keys) > 20 else ""
        # advice replaces the profiling hint where profiling here cannot help (another
        # device's table, or an op the estimator cannot price)
        advice = advice or (f"measure them with:\n  {command}\n"
                            f"(or estimate them with the missing-op policy 'estimate', 'nearest' or 'interpolate')")
        super().__init__(f"latency table {path or ''} has no entry for {len(self.keys)} op(s):\n  {shown}{more}\n"
                         f"{advice}")


class InputShapeError(ValueError):
    """A latency model was measured for another input shape than the network's."""
