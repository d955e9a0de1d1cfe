"""The search loop: Optuna ask/tell over a search space, with the latency predicted first (it
costs microseconds), infeasible networks never trained, repeated architectures answered from
earlier trials, and every trial's spec and measurements recorded as user attributes.

Stopping and resuming: Ctrl-C marks the running trial as failed and interrupted; the next
run of the same command re-queues its architecture first, so no completed trial is lost or
repeated. The trial budget counts completed trials of the whole study (all workers), and
completed trials are distinct architectures: a proposal already in the study is answered from
the record as a pruned trial (``duplicate_of``), costs no budget, and the sampler is asked again.
"""

from __future__ import annotations

import datetime
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from nas.latency.deployment import price
from nas.ops import OpInstance, count_macs, count_params, resolve
from nas.search.halving import SuccessiveHalving, rung_note
from nas.search.objectives import Measured, Objective
from nas.search.study import Heartbeat, ask, completed_trials, current_trial
from nas.space import SearchSpace
from nas.spec import ArchSpec

# Evaluations that raise (not a diverged training, which is a result) are recorded as failed
# trials; this many in a row means something systematic (data gone, disk full) and ends the run.
MAX_CONSECUTIVE_ERRORS = 3
# A sampler that keeps proposing architectures the study already holds has converged or
# exhausted what it can reach; after this many in a row the run stops instead of spinning.
MAX_CONSECUTIVE_DUPLICATES = 200
# Networks whose training diverges are results, but when every one of this many in a row fails,
# the settings are wrong (a learning rate of 1e6): the run stops instead of training forever.
MAX_CONSECUTIVE_FAILED_EVALUATIONS = 10


class LatencyModel(Protocol):
    def predict(self, ops: tuple[OpInstance, ...]) -> float: ...


class Evaluator(Protocol):
    objective: str
    budget_key: str

    def evaluate(self, spec: ArchSpec) -> dict[str, Any]: ...


@dataclass
class RunSummary:
    completed: int = 0  # completed trials in the study when the run ended
    evaluated: int = 0  # networks this run evaluated
    duplicates: int = 0
    withdrawn: int = 0  # asked when other workers' trials had just filled the budget (see asked_past_budget)
    infeasible: int = 0
    failed: int = 0
    interrupted: bool = False
    gave_up: bool = False  # stopped because every recent evaluation failed (see MAX_CONSECUTIVE_FAILED_EVALUATIONS)
    elapsed_s: float = 0.0
    evaluation_s: float = 0.0  # time spent in the evaluator
    notes: list[str] = field(default_factory=list)
    study: optuna.Study | None = field(default=None, repr=False)

    @property
    def controller_s(self) -> float:
        """Everything else the run spent: sampling, storage, deduplication, the loop's checks."""
        return max(0.0, self.elapsed_s - self.evaluation_s)


def measure(spec: ArchSpec, latency_model: LatencyModel) -> Measured:
    """What a network costs, known before it is trained: predicted latency, MACs, parameters."""
    ops = resolve(spec)
    return Measured(latency_ms=price(latency_model, spec), macs=count_macs(ops), params=count_params(ops))


def _log_line(message: str) -> None:
    """One line above the progress bar, flushed: a run whose output goes to a file shows it now."""
    tqdm.write(message)
    sys.stdout.flush()


def one_line(message: str, limit: int = 500) -> str:
    """A failure's reason as one line (errors such as CUDA's span several): it is a cell of
    the report's table and one line of the run's log."""
    return " ".join(str(message).split())[:limit]


def time_left(elapsed_s: float, timeout_s: float, done_this_run: int, trials_left: int | None) -> float:
    """Seconds until the run stops: at the time limit, or sooner when the trials left, at
    this run's mean pace so far, finish first."""
    by_limit = max(0.0, timeout_s - elapsed_s)
    if trials_left is None or done_this_run <= 0:
        return by_limit
    return min(by_limit, trials_left * elapsed_s / done_this_run)


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _primitive_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics that can be stored as Optuna user attributes (JSON primitives)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, int, str)) or value is None:
            out[key] = value
        elif isinstance(value, float):
            out[key] = value if math.isfinite(value) else None
    return out


class Controller:
    """Runs trials of one study until ``trials`` trials have completed or ``timeout_s`` passed."""

    def __init__(self, *, study: optuna.Study, space: SearchSpace, evaluator: Evaluator,
                 latency_model: LatencyModel, objective: Objective, trials: int | None = None,
                 timeout_s: float | None = None, progress: bool = True,
                 log: Callable[[str], None] | None = None, storage: optuna.storages.BaseStorage | None = None,
                 heartbeat_interval_s: float = 5, grace_period_s: float = 20):
        """``storage`` is the storage object the study was opened with; when it has heartbeats
        (RDB storages, journal files), running trials beat and dead workers' trials are waited
        for. The interval and grace period apply to journal files (RDB storages keep theirs)."""
        self.storage = storage
        self.study, self.space, self.evaluator = study, space, evaluator
        self.latency_model, self.objective = latency_model, objective
        self.trials, self.timeout_s, self.progress = trials, timeout_s, progress
        self.log = log or _log_line
        self.choices = space.parameters()
        self.consecutive_errors = 0
        self.consecutive_duplicates = 0
        self.consecutive_failures = 0  # failed evaluations in a row, diverged trainings included
        self.last_failure = ""
        self.heartbeat = Heartbeat(storage, heartbeat_interval_s, grace_period_s)
        # An evaluator with a schedule trains rung by rung, stopped early unless promoted (successive halving)
        self.halving = (SuccessiveHalving(study, objective, evaluator)
                        if getattr(evaluator, "schedule", None) is not None else None)

    # ---- measuring

    def measure(self, spec: ArchSpec) -> Measured:
        return measure(spec, self.latency_model)

    def spec_attrs(self, spec: ArchSpec, m: Measured) -> dict[str, Any]:
        # constraint values go to Trial.set_constraint (see step); "feasible" is for reports
        return {"arch_id": spec.arch_id, "spec": spec.to_json(), "spec_string": spec.to_string(),
                "latency_ms": m.latency_ms, "macs": m.macs, "params": m.params, "feasible": self.objective.feasible(m)}

    # ---- the loop

    def completed_count(self) -> int:
        return len(completed_trials(self.study))

    def heartbeat_interval_s(self) -> float:
        return self.heartbeat.interval_s if self.heartbeat.enabled else 0.0

    def next_action(self, trials: list[FrozenTrial]) -> str:
        """``run`` a trial, ``wait`` for others in flight, or ``stop``. Queued trials
        (baselines, retries) always run. Trials running in other workers count toward the
        budget while they run, so that the study ends with exactly the budget: a dead worker's
        trial is failed after its grace period and its retry queued, and a failed one leaves
        room for another. Only storages with heartbeats can tell a dead worker's trial from a
        live one; on the others, running trials are not counted. Nor is a trial running far
        longer than trials take here (see :meth:`in_flight`): a worker killed before its
        trial's first heartbeat leaves a trial that is never failed, and waiting for it would
        never end; at worst the study then ends one trial over the budget."""
        states = [t.state for t in trials]
        if TrialState.WAITING in states or self.trials is None:
            return "run"
        complete = states.count(TrialState.COMPLETE)
        running = self.in_flight(trials) if self.heartbeat.enabled else 0
        if complete + running < self.trials:
            return "run"
        return "wait" if complete < self.trials else "stop"

    def asked_past_budget(self, number: int) -> bool:
        """Whether the trial ``number``, just asked, is one too many. Reading the study and
        asking for a trial are two steps: workers that read it at the same moment all see room
        for one more trial. Trial numbers are handed out in order, so each counts the trials
        asked before its own (completed, or running in a live worker, as :meth:`next_action`
        counts them) and the one that finds the budget filled withdraws."""
        if self.trials is None or number < self.trials:
            return False  # fewer trials than the budget were asked before it: no need to read the study
        before = [t for t in self.study.get_trials(deepcopy=False) if t.number < number]
        complete = sum(1 for t in before if t.state == TrialState.COMPLETE)
        running = self.in_flight(before) if self.heartbeat.enabled else 0
        return complete + running >= self.trials

    def in_flight(self, trials: list[FrozenTrial]) -> int:
        """Running trials younger than twice the grace period and the heartbeat interval plus
        three times the median duration of the study's completed evaluations (the longest with
        successive halving, where most trials stop at the first rung and the median is no guide
        to one training to the top): a dead worker's trial that beat is failed well before (one
        grace period after its last beat)."""
        durations = sorted((t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                           if t.state == TrialState.COMPLETE and "score" in t.user_attrs
                           and t.datetime_start is not None and t.datetime_complete is not None)
        typical = (durations[-1] if self.halving is not None else durations[len(durations) // 2]) if durations else 0.0
        limit = 2 * (self.heartbeat.grace_period_s + self.heartbeat.interval_s) + 3 * typical
        now = datetime.datetime.now()
        return sum(1 for t in trials if t.state == TrialState.RUNNING and t.datetime_start is not None
                   and (now - t.datetime_start).total_seconds() < limit)

    def run(self) -> RunSummary:
        if self.trials is None and self.timeout_s is None:
            raise ValueError("give trials and/or timeout_s")
        summary = RunSummary()
        start = time.perf_counter()
        self.requeue_interrupted()
        if self.halving is not None and self.timeout_s is not None:
            self.halving.deadline = time.monotonic() + self.timeout_s
        done = self.completed_count()
        # With a time limit, tqdm's own estimate (remaining trials at the mean rate) can promise
        # far more than the limit allows: the bar shows time_left's estimate instead.
        bar_format = None if self.timeout_s is None else "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
        bar = tqdm(total=self.trials, initial=min(done, self.trials or done), unit="trial",
                   disable=not self.progress, dynamic_ncols=True, desc=self.study.study_name, bar_format=bar_format)
        next_stale_check = 0.0
        try:
            while True:
                if time.monotonic() >= next_stale_check:
                    # Heartbeats are this far apart: checking for dead workers more often finds nothing new.
                    self.heartbeat.fail_stale(self.study)
                    next_stale_check = time.monotonic() + self.heartbeat_interval_s()
                if self.timeout_s is not None and time.perf_counter() - start >= self.timeout_s:
                    summary.notes.append(f"stopped by the {self.timeout_s:g} s timeout")
                    break
                trials = self.study.get_trials(deepcopy=False)
                action = self.next_action(trials)
                if action == "stop":
                    break
                if action == "wait":
                    time.sleep(self.heartbeat_interval_s())
                    continue
                duplicates_before = summary.duplicates
                self.step(summary, queued=any(t.state == TrialState.WAITING for t in trials))
                self.consecutive_duplicates = (self.consecutive_duplicates + 1
                                               if summary.duplicates > duplicates_before else 0)
                if self.consecutive_failures >= MAX_CONSECUTIVE_FAILED_EVALUATIONS:
                    summary.gave_up = True
                    summary.notes.append(f"stopped: the last {self.consecutive_failures} evaluations all failed "
                                         f"(last: {self.last_failure}); check the evaluator's settings "
                                         f"(learning rate, data) before resuming")
                    break
                if self.consecutive_duplicates >= MAX_CONSECUTIVE_DUPLICATES:
                    summary.notes.append(f"stopped: the sampler proposed {MAX_CONSECUTIVE_DUPLICATES} architectures "
                                         f"in a row that the study already holds (it has converged, or the space "
                                         f"has few members left to try)")
                    break
                if self.progress:
                    bar.n = min(self.completed_count(), self.trials or 10**9)
                    status = self.status_line()
                    if self.timeout_s is not None:
                        left = time_left(time.perf_counter() - start, self.timeout_s, bar.n - done,
                                         None if self.trials is None else self.trials - bar.n)
                        status = f"{format_seconds(left)} left, {status}"
                    bar.set_postfix_str(status, refresh=False)
                    bar.refresh()
        except KeyboardInterrupt:
            summary.interrupted = True
            summary.notes.append("interrupted; run the same command again to resume")
        finally:
            bar.close()
        summary.completed = self.completed_count()
        summary.elapsed_s = time.perf_counter() - start
        return summary

    def step(self, summary: RunSummary, queued: bool = False) -> int:
        """Ask for one trial, measure it, evaluate it unless infeasible or known, tell;
        returns the trial's number. ``queued``: the study held a queued trial when it was last
        read (queued trials run whatever the budget)."""
        trial = ask(self.study)
        trial_id = self.heartbeat.first(self.study, trial.number)
        if not queued and self.asked_past_budget(trial.number):
            trial.set_user_attr("reason", "withdrawn unevaluated: the trials asked before it filled the budget")
            self.study.tell(trial, state=TrialState.PRUNED)
            summary.withdrawn += 1
            return trial.number
        params = {name: trial.suggest_categorical(name, choices) for name, choices in self.choices.items()}
        spec = self.space.decode(params)
        m = self.measure(spec)
        for key, value in self.spec_attrs(spec, m).items():
            trial.set_user_attr(key, value)
        for key, value in self.objective.named_constraints(m).items():
            trial.set_constraint(key, value)  # constrained samplers rank infeasible trials by these
        # Baselines are trained even when infeasible: they are the reference the plots compare to.
        runs = self.objective.feasible(m) or "baseline" in trial.user_attrs
        # The study is read now, after this trial's attributes are written, not before it was
        # asked: another worker's trial of the same architecture then shows its arch_id unless
        # it was asked after this one (and that worker sees this trial instead).
        earlier = self.find_earlier(spec.arch_id, trial.number, evaluated=runs)
        if not runs and earlier is None:
            self.study.tell(trial, self.objective.unevaluated_values(m))
            summary.infeasible += 1
            return trial.number
        if earlier is not None:
            # Pruned, not completed: the budget counts distinct architectures, and the sampler,
            # which learns from completed trials, already has the earlier one.
            if earlier.state == TrialState.RUNNING:  # another worker is evaluating it
                trial.set_user_attr("duplicate_running_of", earlier.number)
            else:
                trial.set_user_attr("duplicate_of", earlier.number)
                for key in ("score", "metrics"):
                    if key in earlier.user_attrs:
                        trial.set_user_attr(key, earlier.user_attrs[key])
            self.study.tell(trial, state=TrialState.PRUNED)
            summary.duplicates += 1
            return trial.number
        self.evaluate_and_tell(trial, spec, m, summary, trial_id)
        return trial.number

    def evaluate_and_tell(self, trial: optuna.Trial, spec: ArchSpec, m: Measured, summary: RunSummary,
                          trial_id: int | None = None) -> None:
        """``trial_id``: the trial's storage id, which the heartbeat beats (None: no heartbeats)."""
        with self.heartbeat.beating(trial_id):
            try:
                metrics, eval_s = self.timed_evaluation(spec, summary, trial, m)
            except KeyboardInterrupt:
                trial.set_user_attr("interrupted", True)
                self.study.tell(trial, state=TrialState.FAIL)
                raise
            except Exception as exc:  # one failed evaluation must not end the search...
                reason = one_line(f"{type(exc).__name__}: {exc}")
                trial.set_user_attr("status", "error")
                trial.set_user_attr("reason", reason)
                self.study.tell(trial, state=TrialState.FAIL)
                self.log(f"trial {trial.number}: evaluation failed: {reason}")
                summary.failed += 1
                self.consecutive_errors += 1
                if self.consecutive_errors >= MAX_CONSECUTIVE_ERRORS:  # ...but a systematic one must
                    raise
                return
        self.consecutive_errors = 0
        score = metrics.get(self.evaluator.objective)
        status = metrics.get("status", "ok")
        ok = status == "ok" and isinstance(score, (int, float)) and math.isfinite(score)
        reason = None if ok else one_line(metrics.get("reason") or f"no finite {self.evaluator.objective}")
        try:
            trial.set_user_attr("metrics", {**_primitive_metrics(metrics), "eval_s": eval_s})
            if ok:
                trial.set_user_attr("score", float(score))
                self.study.tell(trial, self.objective.values(Measured(m.latency_ms, m.macs, m.params, float(score))))
            else:
                trial.set_user_attr("reason", reason)
                self.study.tell(trial, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker's dead-worker check failed the trial meanwhile (this worker's
            # heartbeats stopped for longer than the grace period) and queued its retry; the
            # study keeps its verdict, and the search goes on.
            self.log(f"trial {trial.number}: failed by another worker while it was evaluated here (missed "
                     f"heartbeats); its result is dropped and its queued retry evaluates it again")
            summary.failed += 1
            return
        if not ok:
            self.log(f"trial {trial.number}: {status}: {reason}")
            summary.failed += 1
            self.consecutive_failures += 1
            self.last_failure = f"{status}: {reason}"
        else:
            self.consecutive_failures = 0
            summary.evaluated += 1
            self.log(f"trial {trial.number}: {self.evaluator.objective} {score:.4f}  latency {m.latency_ms:.3f} ms"
                     f"  {m.macs / 1e6:.1f} MMACs  ({eval_s:.1f} s)  {spec.arch_id}{rung_note(metrics)}")

    def timed_evaluation(self, spec: ArchSpec, summary: RunSummary, trial: optuna.Trial | None = None,
                         m: Measured | None = None) -> tuple[dict[str, Any], float]:
        """The evaluator's metrics and seconds; the time counts as evaluation even when it raises.
        With successive halving the trial trains rung by rung, recording each rung in ``trial``."""
        start = time.perf_counter()
        try:
            if self.halving is not None and trial is not None:
                metrics = self.halving.evaluate(trial, spec, m)
            else:
                metrics = self.evaluator.evaluate(spec)
        finally:
            seconds = time.perf_counter() - start
            summary.evaluation_s += seconds
        return metrics, seconds

    def find_earlier(self, arch_id: str, number: int, known: list[FrozenTrial] | None = None,
                     evaluated: bool = True) -> FrozenTrial | None:
        """A completed trial of the same architecture (with a score when ``evaluated``: an
        infeasible record does not answer for a network that must be trained), else one still
        running in another worker, else None; among ``known`` trials when given, else the
        study's now. A running one found among ``known`` is read again: it may have ended (or
        been failed as a dead worker's, and this trial be its retry) since they were read."""
        running = None
        for t in self.study.get_trials(deepcopy=False) if known is None else known:
            if t.number == number or t.user_attrs.get("arch_id") != arch_id:
                continue
            if t.state == TrialState.COMPLETE and ("score" in t.user_attrs or not evaluated):
                return t
            if t.state == TrialState.RUNNING and t.number < number:
                running = t
        if running is not None and known is not None:
            running = current_trial(self.study, running.number, self.storage)
            if running.state == TrialState.COMPLETE and "score" in running.user_attrs:
                return running
            return running if running.state == TrialState.RUNNING else None
        return running

    def requeue_interrupted(self) -> None:
        """Queue again the architectures whose evaluation a Ctrl-C cut short."""
        done = set(self.study.user_attrs.get("requeued_trials", []))
        todo = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                if t.user_attrs.get("interrupted") and t.number not in done]
        for t in todo:
            self.study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
            done.add(t.number)
        if todo:
            self.study.set_user_attr("requeued_trials", sorted(done))
            self.log(f"resuming: re-queued {len(todo)} interrupted trial(s)")

    def status_line(self) -> str:
        trials = [t for t in completed_trials(self.study) if t.user_attrs.get("feasible", True)
                  and "score" in t.user_attrs]
        if not trials:
            return "no result yet"
        if self.objective.multi:
            front = self.study.best_trials  # Optuna's front: completed, and feasible when constrained
            best = max(front, key=lambda t: t.values[0])
            return f"pareto {len(front)}, best {best.values[0]:.4f} @ {best.user_attrs['latency_ms']:.3f} ms"
        best = max(trials, key=lambda t: t.values[0])
        return f"best {self.objective.names[0]} {best.values[0]:.4f} (trial {best.number})"
