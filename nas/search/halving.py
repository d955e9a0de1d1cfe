"""Multi-objective asynchronous successive halving (MO-ASHA, the stopping variant).

Every candidate trains to the first rung. At each rung it reports its score, and it trains on
to the next rung only if it is among the best ``keep`` share of the trials that have reported
that rung so far, itself included: the best ``ceil(keep * n)`` of ``n``, ranked by
non-dominated sorting and, within a front, by crowding distance (NSGA-II's order), over the
study's objectives (accuracy maximised, latency minimised, and any extra objectives). No
worker waits for a rung to fill: the first trials at a rung always go on, later ones must
beat what came before. This follows MO-ASHA as Syne Tune implements it (Salinas et al.,
"A multi-objective perspective on jointly tuning hardware and hyperparameters", 2021), with
crowding distance instead of its epsilon-net inside a front.

State lives in the Optuna storage, through public APIs only, so many workers on PostgreSQL
share it and a killed run resumes: each trial records ``rung_scores`` (its score at each rung
it reached, in order), ``rung`` (1-based), ``rung_budget`` (the rung's epochs or data share)
and, when it ends, ``stopped`` (true when the halving stopped it below the top rung;
``stopped_by: "time limit"`` when the search's time limit had passed, see ``deadline``). A trial
stopped early is a completed trial with its last rung's score, so the sampler and the Pareto
front see it; the report marks points by rung. A killed trial's retry trains again from
scratch (the evaluator's cache answers the rungs already trained).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.search.objectives import Measured

UNITS = ("epochs", "fraction")
MAX_RUNGS = 32
MAX_EPOCH_RUNG = 10_000  # as nas.train.MAX_EPOCHS


class ScheduleError(ValueError):
    """A bad successive-halving schedule; the message names the value and what was expected."""


@dataclass(frozen=True)
class RungSchedule:
    """Where candidates are judged. ``unit="epochs"``: rung ``r`` means ``r`` epochs over the
    training budget's data (whole numbers). ``unit="fraction"``: rung ``r`` means the network
    has seen the first ``r`` share of the training split (a fixed, seeded order), each image
    once; going on to the next rung trains on the next, unseen slice. ``keep``: the share of a
    rung's trials that go on to the next."""

    rungs: tuple[float, ...]
    keep: float = 0.33
    unit: str = "epochs"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ScheduleError(f"schedule.unit must be one of {list(UNITS)}, got {self.unit!r}")
        rungs = self.rungs
        if isinstance(rungs, (str, bytes)) or not isinstance(rungs, Sequence) or not rungs:
            raise ScheduleError(f"schedule.rungs must be a non-empty list of numbers, got {rungs!r}")
        if len(rungs) > MAX_RUNGS:
            raise ScheduleError(f"schedule.rungs: at most {MAX_RUNGS} rungs, got {len(rungs)}")
        for value in rungs:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ScheduleError(f"schedule.rungs must be finite numbers, got {value!r} in {list(rungs)}")
            if value <= 0:
                raise ScheduleError(f"schedule.rungs must be > 0, got {value!r} in {list(rungs)}")
            if self.unit == "epochs" and (float(value) != int(value) or value > MAX_EPOCH_RUNG):
                raise ScheduleError(f"schedule.rungs in epochs must be whole numbers of epochs <= {MAX_EPOCH_RUNG}, "
                                    f"got {value!r} in {list(rungs)} (for shares of the data, give unit: fraction)")
            if self.unit == "fraction" and value > 1:
                raise ScheduleError(f"schedule.rungs in fractions are shares of the training split, at most 1, "
                                    f"got {value!r} in {list(rungs)}")
        for before, after in zip(rungs, rungs[1:]):
            if after <= before:
                raise ScheduleError(f"schedule.rungs must be strictly increasing, got {after!r} after {before!r} "
                                    f"in {list(rungs)}")
        keep = self.keep
        if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep < 1:
            raise ScheduleError(f"schedule.keep must be a number in (0, 1), the share of a rung's trials that "
                                f"go on, got {keep!r}")
        cast = int if self.unit == "epochs" else float
        object.__setattr__(self, "rungs", tuple(cast(v) for v in rungs))
        object.__setattr__(self, "keep", float(keep))

    @classmethod
    def of(cls, value: Any) -> RungSchedule:
        """A schedule from itself or a mapping ``{rungs, keep, unit}`` (as configs give it)."""
        if isinstance(value, RungSchedule):
            return value
        if not isinstance(value, dict):
            raise ScheduleError(f"schedule must be a mapping {{rungs, keep, unit}}, got {value!r}")
        unknown = sorted(set(value) - {"rungs", "keep", "unit"})
        if unknown:
            raise ScheduleError(f"unknown schedule key {unknown[0]!r}; expected some of ['keep', 'rungs', 'unit']")
        if "rungs" not in value:
            raise ScheduleError("schedule needs rungs, e.g. {rungs: [1, 3, 9], keep: 0.33}")
        rungs = value["rungs"]
        rungs = tuple(rungs) if isinstance(rungs, (list, tuple)) else rungs
        return cls(rungs, value.get("keep", 0.33), value.get("unit", "epochs"))

    @property
    def top(self) -> int:
        """The 1-based number of the last rung."""
        return len(self.rungs)

    def describe(self, upto: int | None = None) -> str:
        """``epochs:1,3`` for the rungs up to ``upto`` (1-based; all by default): what a
        rung's result depends on, and so part of its cache key."""
        rungs = self.rungs[:upto]
        return f"{self.unit}:{','.join(f'{r:g}' for r in rungs)}"

    @property
    def key(self) -> str:
        return f"rungs={self.describe()}|keep={self.keep:g}"

    def kept(self, reported: int) -> int:
        """How many of ``reported`` trials at a rung go on: the best ``ceil(keep * n)``."""
        return math.ceil(self.keep * reported - 1e-9)


# --------------------------------------------------------------------------------------
# ranking


def _minimised(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return np.asarray(values, dtype=float).reshape(len(values), len(directions)) * signs


def nondominated_fronts(values: np.ndarray, directions: Sequence[str]) -> list[np.ndarray]:
    """Indices of the rows of ``values`` (n x k) front by front: first the non-dominated rows,
    then those only the first front dominates, and so on (NSGA-II's sorting)."""
    points = _minimised(values, directions)
    n = len(points)
    # dominates[i, j]: row i is no worse than row j everywhere and better somewhere
    no_worse = np.all(points[:, None, :] <= points[None, :, :], axis=2)
    better = np.any(points[:, None, :] < points[None, :, :], axis=2)
    dominates = no_worse & better
    dominated_by = dominates.sum(axis=0)
    fronts, remaining = [], np.ones(n, dtype=bool)
    while remaining.any():
        front = np.flatnonzero(remaining & (dominated_by == 0))
        fronts.append(front)
        remaining[front] = False
        dominated_by = dominated_by - dominates[front].sum(axis=0)
    return fronts


def crowding_distance(values: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each row of ``values`` (one front, n x k): per objective,
    the gap between its two neighbours over the objective's range, summed; the extremes of
    each objective get infinity (they are kept first, so the front's ends survive)."""
    points = np.asarray(values, dtype=float)
    n, k = points.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(k):
        order = np.argsort(points[:, j], kind="stable")
        column = points[order, j]
        span = column[-1] - column[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[2:] - column[:-2]) / span
    return distance


def priority_order(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Row indices best first: by non-dominated front, then by crowding distance within the
    front (larger first); exact ties keep the rows' order (earlier reports first)."""
    points = _minimised(values, directions)
    order: list[int] = []
    for front in nondominated_fronts(values, directions):
        crowding = crowding_distance(points[front])
        order += [int(front[i]) for i in sorted(range(len(front)), key=lambda i: (-crowding[i], i))]
    return np.array(order, dtype=int)


def goes_on(values: np.ndarray, directions: Sequence[str], own: int, schedule: RungSchedule) -> bool:
    """Whether row ``own`` of a rung's ``values`` (every trial that reported the rung, itself
    included) is among the best ``ceil(keep * n)``."""
    position = int(np.flatnonzero(priority_order(values, directions) == own)[0])
    return position < schedule.kept(len(values))


def rung_note(metrics: dict[str, Any]) -> str:
    """For a trial's log line: the rung it reached and whether it was stopped there; empty
    without successive halving."""
    if "rung" not in metrics:
        return ""
    return f"  rung {metrics['rung']}{' (stopped)' if metrics.get('stopped') else ''}"


# --------------------------------------------------------------------------------------
# the study's records


RECORD_ATTR = "rung_scores"


def rung_points(trials, rung: int, own_number: int, own_arch: str) -> list[Any]:
    """The trials that reported ``rung`` (1-based), one per architecture: a killed trial and
    its retry are one network, and the trial asking (``own_number``) stands for its own. Each
    trial is any object with Optuna's ``number`` and ``user_attrs``."""
    chosen: dict[str, Any] = {}
    for t in trials:
        scores = t.user_attrs.get(RECORD_ATTR) or []
        arch = t.user_attrs.get("arch_id")
        if len(scores) < rung or arch is None:
            continue
        if arch == own_arch and t.number != own_number:
            continue  # an earlier, killed evaluation of this network: the asking trial replaces it
        chosen.setdefault(arch, t)
    return list(chosen.values())


class SuccessiveHalving:
    """Runs one trial's evaluation rung by rung (``evaluate``), recording each rung in the
    trial and deciding from the study's records whether it goes on. ``evaluator`` must offer
    ``schedule`` and ``evaluate_rungs(spec)`` (nas.evaluate.TrainEvaluator with a schedule)."""

    def __init__(self, study, objective, evaluator):
        self.study, self.objective, self.evaluator = study, objective, evaluator
        self.schedule: RungSchedule = evaluator.schedule
        # time.monotonic() past which no trial goes on to another rung (the search's time limit):
        # a run then ends within one rung's training of it, not one trial's full training
        self.deadline: float | None = None

    def evaluate(self, trial, spec, measured) -> dict[str, Any]:
        """The metrics of the last rung ``trial`` reached, with ``rung``, ``rung_budget`` and
        ``stopped``. A rung whose training failed (diverged, timed out) ends the trial there with
        that rung's metrics and is not recorded as reached. Baselines always go on (their rungs
        still count in the others' rankings)."""
        scores: list[float] = []
        metrics: dict[str, Any] = {}
        rungs = self.evaluator.evaluate_rungs(spec)
        try:
            for metrics in rungs:
                score = metrics.get(self.evaluator.objective)
                if metrics.get("status", "ok") != "ok" or not isinstance(score, (int, float)) \
                        or not math.isfinite(score):
                    return metrics
                rung = metrics["rung"]
                scores.append(float(score))
                trial.set_user_attr(RECORD_ATTR, list(scores))
                trial.set_user_attr("rung", rung)
                trial.set_user_attr("rung_budget", metrics["rung_budget"])
                if rung == self.schedule.top:
                    break
                if "baseline" in trial.user_attrs:
                    continue  # a reference network trains to the top rung: the plots compare against it
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    trial.set_user_attr("stopped", True)
                    trial.set_user_attr("stopped_by", "time limit")
                    return {**metrics, "stopped": True}
                own = Measured(measured.latency_ms, measured.macs, measured.params, float(score))
                if not self.promoted(trial.number, spec.arch_id, rung, own):
                    trial.set_user_attr("stopped", True)
                    return {**metrics, "stopped": True}
        finally:
            rungs.close()  # a stopped trial's network is dropped here, not trained on
        trial.set_user_attr("stopped", False)
        return {**metrics, "stopped": False}

    def promoted(self, number: int, arch_id: str, rung: int, own) -> bool:
        """Whether the trial goes on from ``rung``, judged against the study's records as they
        are now (read after its own record was written, so two workers at a rung at once both
        see each other)."""
        from optuna.trial import TrialState  # here: nas.evaluate imports this module and need not load optuna

        trials = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE,
                                                               TrialState.FAIL))
        points, own_index = [], None
        for t in rung_points(trials, rung, number, arch_id):
            if t.number == number:
                own_index = len(points)
                points.append(self.objective.values(own))
                continue
            attrs = t.user_attrs
            score = attrs[RECORD_ATTR][rung - 1]
            points.append(self.objective.values(Measured(attrs["latency_ms"], attrs["macs"], attrs["params"],
                                                         score)))
        if own_index is None:  # its own record is not readable yet (a storage that lags): judge it anyway
            own_index = len(points)
            points.append(self.objective.values(own))
        return goes_on(np.array(points, dtype=float), self.objective.directions, own_index, self.schedule)
