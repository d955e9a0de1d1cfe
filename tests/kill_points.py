"""Places where a test worker stops and waits to be killed, so that a test can SIGKILL it at
an exact moment instead of at a random one. Used by :mod:`tests.distributed_worker` when
``NAS_TEST_KILL_AT`` is set; the worker then writes ``NAS_TEST_KILL_MARKER`` (a JSON object
saying where it stopped) and sleeps until it is killed.

The points, each reached through the code a real run executes (nothing in ``nas`` changes):

``evaluation:K``
    inside this worker's K-th evaluation: the evaluator has started (and logged the
    architecture), the trial is RUNNING and its heartbeat thread keeps beating.
``write:K``
    inside the database transaction that writes the K-th evaluated trial's result: the
    statements that set the trial COMPLETE and insert its objective values have been sent
    (SQLAlchemy's ``after_cursor_execute`` event, on the insert into ``trial_values``, the
    last statement of the transaction), and the commit has not happened. This is the only
    honest meaning of "killed during the study's write" for a database: a process cannot
    be stopped halfway through one statement, and a kill before the first statement or
    after the commit is a kill during the trial or after it.
``report:NAME``
    while writing the report file NAME (e.g. ``trials.csv``): the first ``write`` to a file
    in the run folder whose name contains NAME's stem writes half of its bytes to disk and
    stops. Whatever file name the report code writes to (the final name, or a temporary
    one it renames later) receives half a file, as it would from a process killed there.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import time
from pathlib import Path

import sqlalchemy


def stop_here(where: dict) -> None:
    """Say where the worker stopped (the marker is renamed into place, so a test never reads
    half of it) and sleep until killed."""
    marker = Path(os.environ["NAS_TEST_KILL_MARKER"])
    temporary = marker.with_name(marker.name + ".partial")
    temporary.write_text(json.dumps({**where, "pid": os.getpid()}))
    os.replace(temporary, marker)
    while True:
        time.sleep(60)


class StoppingEvaluator:
    """Wraps an evaluator; stops inside its K-th evaluation (``evaluation``), or arms
    :func:`stop_in_result_write` when the K-th evaluation has returned (``write``)."""

    def __init__(self, inner, point: str, k: int):
        self.inner, self.point, self.k, self.count = inner, point, k, 0
        self.objective, self.budget_key = inner.objective, inner.budget_key
        self.input_shape, self.classes = inner.input_shape, inner.classes

    def evaluate(self, spec):
        self.count += 1
        if self.count == self.k and self.point == "evaluation":
            self.inner.evaluate(spec)  # logs the evaluation, as a real one would have started
            stop_here({"point": "evaluation", "arch_id": spec.arch_id})
        metrics = self.inner.evaluate(spec)
        if self.count == self.k and self.point == "write":
            stop_in_result_write(spec.arch_id)
        return metrics


def stop_in_result_write(arch_id: str) -> None:
    """Stop after the next insert of objective values, inside its transaction."""

    def after_execute(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO TRIAL_VALUES"):
            stop_here({"point": "write", "arch_id": arch_id})

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "after_cursor_execute", after_execute)


class _HalfWrittenFile:
    """A file whose first ``write`` writes half of the data, flushes it to disk and stops."""

    def __init__(self, file, path: str):
        self._file, self._path = file, path

    def write(self, data):
        self._file.write(data[: len(data) // 2])
        self._file.flush()
        os.fsync(self._file.fileno())
        stop_here({"point": "report", "path": self._path})

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._file.__exit__(*exc)

    def __iter__(self):
        return iter(self._file)


def stop_in_report_file(folder: Path, name: str) -> None:
    """Make the first write to a file of ``folder`` whose name contains ``name``'s stem stop
    halfway (``open`` is how pandas, pathlib and matplotlib all open the files they write)."""
    original, stem = builtins.open, Path(name).stem

    def opening(file, mode="r", *args, **kwargs):
        handle = original(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax"):
            path = Path(file)
            if path.parent.resolve() == folder.resolve() and stem in path.name:
                return _HalfWrittenFile(handle, str(path))
        return handle

    builtins.open = io.open = opening


def install(evaluator, output: Path):
    """The worker's evaluator with the stopping point of ``NAS_TEST_KILL_AT`` (if any) installed."""
    point = os.environ.get("NAS_TEST_KILL_AT")
    if not point:
        return evaluator
    kind, _, argument = point.partition(":")
    if kind in ("evaluation", "write"):
        return StoppingEvaluator(evaluator, kind, int(argument))
    if kind == "report":
        stop_in_report_file(output, argument)
        return evaluator
    raise ValueError(f"NAS_TEST_KILL_AT={point!r}: expected evaluation:K, write:K or report:NAME")
