"""Output folders: check, before any work, that results can be written where asked."""

from __future__ import annotations

from pathlib import Path


def unwritable_reason(folder: Path) -> str | None:
    """Create ``folder`` if needed and write a probe file into it; None when that works, else
    why not (for the caller's own error type and message)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return str(exc.strerror or exc)
    return None
