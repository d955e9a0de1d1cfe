"""Output folders: check, before any work, that results can be written where asked; write
files whole; leave no empty folder behind when a run fails before writing anything."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def unwritable_reason(folder: Path) -> str | None:
    """Create ``folder`` if needed and write a probe file into it; None when that works, else
    why not (for the caller's own error type and message)."""
    if folder.exists() and not folder.is_dir():
        return "it is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"  # one per process: workers may start together
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return str(exc.strerror or exc)
    return None


@contextlib.contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to, renamed over ``path`` when the block ends
    without an error: a file under its own name is always whole (a process killed while
    writing leaves at most a hidden ``.NAME.PID.EXT`` file, which nothing reads). The extension
    is kept because matplotlib picks the image format from it."""
    temporary = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as exc:
        if exc.filename in (None, str(temporary)):  # name the file the user asked for (a full disk says no name)
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def removed_if_left_empty(folder: Path) -> Iterator[None]:
    """Run a block that may create ``folder`` (and its missing parents); if the block fails,
    remove the folders it created that are still empty, so that a failed command leaves no
    empty run folder behind. Folders that existed before, or hold anything, are kept."""
    created = []
    for candidate in [folder, *folder.parents]:
        if candidate.exists():
            break
        created.append(candidate)
    try:
        yield
    except BaseException:
        for candidate in created:  # deepest first
            try:
                candidate.rmdir()  # only succeeds when empty
            except OSError:
                break
        raise
