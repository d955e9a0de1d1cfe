"""An in-memory copy of the trials this process is running, so that reading them back costs
no database round trip.

Optuna reads the running trial back from an RDB storage six times per ask/tell cycle (when
the trial object is made, twice in ``tell``, and in every study read, which re-reads all
unfinished trials), each time with all its parameters (48 in the hybrid space) and
attributes, and each read
costs more than the trial's writes. A running trial is written only by the worker running
it, so that worker can keep an exact copy: every write this process makes to it goes to the
database and to the copy. A finished trial's record (its completion time is chosen by the
storage before it is written, so the copy holds exactly what the database does) is kept until
a study read has taken it; from then on Optuna's own cache keeps it.

Values are held as the database would return them: attributes as their JSON text (so a
tuple comes back as a list, and each record gets its own objects), parameters in Optuna's
internal representation with their distributions.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from optuna import distributions
from optuna.trial import FrozenTrial, TrialState

# Finished trials read back but not yet handed to a study read; more than this means the
# reads stopped coming, and the oldest are dropped (they are read from the database again).
MAX_FINISHED = 64


@dataclass
class _Running:
    study_id: int
    number: int
    trial_id: int
    datetime_start: Any
    params: dict[str, tuple[float, distributions.BaseDistribution]] = field(default_factory=dict)
    user_attrs: dict[str, str] = field(default_factory=dict)  # key -> JSON text
    system_attrs: dict[str, str] = field(default_factory=dict)
    # The last record built for study reads, until the next write: several reads come between
    # two writes. Shared like the trials Optuna's own cache hands out: read-only.
    snapshot: FrozenTrial | None = None

    def frozen(self) -> FrozenTrial:
        if self.snapshot is None:
            self.snapshot = self.build()
        return self.snapshot

    def build(self) -> FrozenTrial:
        return FrozenTrial(
            number=self.number, state=TrialState.RUNNING, value=None, values=None,
            datetime_start=self.datetime_start, datetime_complete=None,
            params={name: dist.to_external_repr(value) for name, (value, dist) in self.params.items()},
            distributions={name: dist for name, (_, dist) in self.params.items()},
            user_attrs={key: json.loads(text) for key, text in self.user_attrs.items()},
            system_attrs={key: json.loads(text) for key, text in self.system_attrs.items()},
            intermediate_values={}, trial_id=self.trial_id)


class TrialMirror:
    """Copies of this process's running trials (fresh ones it created, nothing queued by
    others) and of its just-finished trials. Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict[int, _Running] = {}
        self._finished: OrderedDict[int, tuple[int, FrozenTrial]] = OrderedDict()

    def started(self, study_id: int, trial: FrozenTrial) -> None:
        """A trial this process has just created, empty and running."""
        with self._lock:
            self._running[trial._trial_id] = _Running(study_id, trial.number, trial._trial_id, trial.datetime_start)

    def set_param(self, trial_id: int, name: str, value: float, distribution: distributions.BaseDistribution) -> None:
        with self._lock:
            trial = self._running.get(trial_id)
            if trial is not None:
                trial.params[name] = (value, distribution)
                trial.snapshot = None

    def set_attr(self, trial_id: int, system: bool, key: str, value: Any) -> None:
        with self._lock:
            trial = self._running.get(trial_id)
            if trial is not None:
                (trial.system_attrs if system else trial.user_attrs)[key] = json.dumps(value)
                trial.snapshot = None

    def forget(self, trial_ids) -> None:
        """These trials are no longer copied: they changed in a way the copy does not follow."""
        with self._lock:
            for trial_id in trial_ids:
                self._running.pop(trial_id, None)
                self._finished.pop(trial_id, None)

    def is_running(self, trial_id: int) -> bool:
        return trial_id in self._running

    def get(self, trial_id: int) -> FrozenTrial | None:
        """A trial's record, or None when it is not held. A running trial's record is the
        caller's own: Optuna's Trial object keeps it and changes it as it writes."""
        with self._lock:
            running = self._running.get(trial_id)
            if running is not None:
                return running.build()
            finished = self._finished.get(trial_id)
            return finished[1] if finished is not None else None

    def finish(self, trial_id: int, state: TrialState, values: list[float] | None, datetime_complete) -> None:
        """A trial of ours has finished with these values (floats) at this time (as the
        database stored it); its record never changes again."""
        with self._lock:
            running = self._running.pop(trial_id, None)
            if running is None:
                return
            trial = running.build()
            trial.state, trial.datetime_complete = state, datetime_complete
            trial.values = values
            self._finished[trial_id] = (running.study_id, trial)
            while len(self._finished) > MAX_FINISHED:
                self._finished.popitem(last=False)

    def of_study(self, study_id: int) -> dict[int, TrialState]:
        """The state of each trial held for this study."""
        with self._lock:
            states = {tid: TrialState.RUNNING for tid, t in self._running.items() if t.study_id == study_id}
            states.update({tid: t.state for tid, (sid, t) in self._finished.items() if sid == study_id})
            return states

    def take(self, trial_id: int) -> FrozenTrial:
        """The trial for a study read: a running one's current copy; a finished one is handed
        over (the study's cache keeps finished trials from now on)."""
        with self._lock:
            running = self._running.get(trial_id)
            if running is not None:
                return running.frozen()
            return self._finished.pop(trial_id)[1]
