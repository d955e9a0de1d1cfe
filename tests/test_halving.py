"""Multi-objective successive halving: the ranking, the promotion decisions against the study's
records, training on from rung to rung, the search end to end, resume, and the config errors."""

import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState

import nas.evaluate
import nas.train
from nas.config import ConfigError, ObjectiveConfig, parse_config
from nas.data import load_dataset
from nas.evaluate import EvaluatorError, make_evaluator
from nas.experiment import run_experiment
from nas.report import evaluated, open_run, trials_frame
from nas.report_rungs import rung_groups, rungs_section
from nas.search.halving import (
    RungSchedule,
    ScheduleError,
    SuccessiveHalving,
    crowding_distance,
    goes_on,
    nondominated_fronts,
    priority_order,
)
from nas.search.objectives import Measured, Objective
from nas.spec import ArchSpec
from nas.train import Budget, training_slice, training_subset
from tests.fakes import FakeLatency

PARETO = ["maximize", "minimize"]
TINY = "28x28x1>10|conv_k3_s2_c8_bn_relu|conv_k3_s2_c16_bn_relu|gap,fc"
FAST = dict(batch_size=32, lr=0.2, threads=1)


# --------------------------------------------------------------------------------------
# ranking


def test_nondominated_fronts_on_hand_made_points():
    # (accuracy, latency): B dominates C, C dominates D; A, B and E trade off
    points = np.array([[0.9, 5.0], [0.8, 3.0], [0.7, 4.0], [0.6, 6.0], [0.95, 10.0]])
    fronts = [sorted(f.tolist()) for f in nondominated_fronts(points, PARETO)]
    assert fronts == [[0, 1, 4], [2], [3]]


def test_equal_points_share_a_front():
    points = np.array([[0.5, 2.0], [0.5, 2.0], [0.9, 1.0]])
    assert [sorted(f.tolist()) for f in nondominated_fronts(points, PARETO)] == [[2], [0, 1]]


def test_crowding_distance_by_hand():
    # minimised points on one front; per objective the range is 4
    points = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    distance = crowding_distance(points)
    assert np.isinf(distance[0]) and np.isinf(distance[3])
    assert distance[1] == pytest.approx((3 - 0) / 4 + (4 - 1) / 4)  # 1.5
    assert distance[2] == pytest.approx((4 - 1) / 4 + (2 - 0) / 4)  # 1.25
    assert np.isinf(crowding_distance(points[:2])).all()  # two points: both ends


def test_priority_order_is_front_then_crowding():
    # front 1: four (accuracy, latency) points; crowding 1.5 for the second, 1.25 for the third
    # (as in the test above, accuracy spanning 0.4); front 2: one point the second dominates
    points = np.array([[1.0, 4.0], [0.9, 2.0], [0.7, 1.0], [0.6, 0.0], [0.85, 2.5]])
    order = priority_order(points, PARETO).tolist()
    assert set(order[:2]) == {0, 3}  # the ends first
    assert order[2:] == [1, 2, 4]  # then the less crowded middle point, then the next front


def test_goes_on_keeps_the_best_ceil_keep_share():
    points = np.array([[0.9, 1.0], [0.8, 2.0], [0.7, 3.0], [0.6, 4.0]])  # all dominated in a chain
    schedule = RungSchedule((1, 3), keep=0.5)
    assert [goes_on(points, PARETO, i, schedule) for i in range(4)] == [True, True, False, False]
    third = RungSchedule((1, 3), keep=0.33)  # ceil(0.33 * 4) = 2
    assert [goes_on(points, PARETO, i, third) for i in range(4)] == [True, True, False, False]
    assert goes_on(points[:1], PARETO, 0, third)  # the first at a rung always goes on


# --------------------------------------------------------------------------------------
# promotion decisions against a fake study


class FakeStudy:
    def __init__(self, trials):
        self.trials = trials

    def get_trials(self, deepcopy=False, states=None):
        return [t for t in self.trials if states is None or t.state in states]


def record(number, arch, scores, latency, state=TrialState.COMPLETE):
    return SimpleNamespace(number=number, state=state, user_attrs={
        "arch_id": arch, "rung_scores": scores, "latency_ms": latency, "macs": 1, "params": 1})


def halving(trials, keep=0.5):
    evaluator = SimpleNamespace(schedule=RungSchedule((1, 3, 9), keep=keep), objective="accuracy")
    return SuccessiveHalving(FakeStudy(trials), Objective(ObjectiveConfig()), evaluator)


def own(score, latency):
    return Measured(latency, 1, 1, score)


def test_first_trial_at_a_rung_goes_on():
    assert halving([]).promoted(0, "a", 1, own(0.1, 9.0))


def test_dominated_trial_stops_and_front_trial_goes_on():
    others = [record(0, "a", [0.9], 1.0), record(1, "b", [0.8], 2.0), record(2, "c", [0.85], 1.5)]
    h = halving(others, keep=0.33)  # 4 at the rung: the best 2 go on
    assert not h.promoted(3, "d", 1, own(0.5, 3.0))  # dominated by all three
    assert h.promoted(3, "d", 1, own(0.95, 0.5))  # dominates them all


def test_only_trials_that_reported_the_rung_count():
    # three better trials, but only one of them reached rung 2; pruned and waiting ones never count
    others = [record(0, "a", [0.9, 0.91], 1.0), record(1, "b", [0.9], 1.0), record(2, "c", [0.9], 1.0),
              record(3, "e", [0.99, 0.99], 0.1, state=TrialState.PRUNED)]
    h = halving(others, keep=0.5)  # at rung 2: a and the asking trial, the best 1 goes on
    assert not h.promoted(5, "d", 2, own(0.5, 3.0))
    assert h.promoted(5, "d", 2, own(0.95, 0.5))
    assert not h.promoted(5, "d", 1, own(0.5, 3.0))  # at rung 1: four trials, it is last of them


def test_a_killed_earlier_evaluation_of_the_same_network_is_not_counted_twice():
    better = record(0, "x", [0.9], 1.0)
    killed = record(1, "d", [0.5], 2.0, state=TrialState.FAIL)  # this network, before a kill
    # keep 0.6: of 2 trials (better, the retry) 2 go on; had the killed one counted, 2 of 3
    assert halving([better, killed], keep=0.6).promoted(2, "d", 1, own(0.5, 2.0))
    other = record(1, "z", [0.5], 2.0, state=TrialState.FAIL)  # another network, killed: it counts
    assert not halving([better, other], keep=0.6).promoted(2, "d", 1, own(0.5, 2.0))


class RungTrial:
    """An optuna.Trial stand-in that records its user attributes in a FakeStudy."""

    def __init__(self, study, number, arch, latency):
        self.number, self.state = number, TrialState.RUNNING
        self.user_attrs = {"arch_id": arch, "latency_ms": latency, "macs": 1, "params": 1}
        study.trials.append(self)

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


class ScriptedRungs:
    """evaluate_rungs yields the given scores; remembers how far it was asked to go."""

    objective = "accuracy"

    def __init__(self, scores, schedule):
        self.scores, self.schedule, self.trained = scores, schedule, 0

    def evaluate_rungs(self, spec):
        for rung, score in enumerate(self.scores, 1):
            self.trained = rung
            yield {"accuracy": score, "status": "ok", "rung": rung, "rung_budget": self.schedule.rungs[rung - 1]}


def run_trial(study, number, scores, latency, keep=0.5):
    schedule = RungSchedule((1, 3, 9), keep=keep)
    evaluator = ScriptedRungs(scores, schedule)
    trial = RungTrial(study, number, f"arch{number}", latency)
    h = SuccessiveHalving(study, Objective(ObjectiveConfig()), evaluator)
    metrics = h.evaluate(trial, SimpleNamespace(arch_id=f"arch{number}"), Measured(latency, 1, 1))
    trial.state = TrialState.COMPLETE
    return trial, metrics, evaluator


def test_evaluate_records_each_rung_and_stops_training_when_not_promoted():
    study = FakeStudy([])
    first, metrics, rungs = run_trial(study, 0, [0.8, 0.85, 0.9], 1.0)
    assert rungs.trained == 3 and metrics["rung"] == 3 and metrics["stopped"] is False
    assert first.user_attrs["rung_scores"] == [0.8, 0.85, 0.9] and first.user_attrs["rung"] == 3
    assert first.user_attrs["rung_budget"] == 9 and first.user_attrs["stopped"] is False
    worse, metrics, rungs = run_trial(study, 1, [0.5, 0.6, 0.7], 2.0)
    assert rungs.trained == 1, "a stopped trial must not train the next rung"
    assert metrics["rung"] == 1 and metrics["stopped"] is True and metrics["accuracy"] == 0.5
    assert worse.user_attrs["rung_scores"] == [0.5] and worse.user_attrs["stopped"] is True


def test_a_baseline_trains_to_the_top_rung_whatever_its_rank():
    study = FakeStudy([record(0, "a", [0.9, 0.95, 0.97], 1.0)])
    schedule = RungSchedule((1, 3, 9), keep=0.33)
    evaluator = ScriptedRungs([0.5, 0.6, 0.7], schedule)
    trial = RungTrial(study, 1, "b", 2.0)
    trial.user_attrs["baseline"] = "mobilenet_v1_0.25"
    metrics = SuccessiveHalving(study, Objective(ObjectiveConfig()), evaluator).evaluate(
        trial, SimpleNamespace(arch_id="b"), Measured(2.0, 1, 1))
    assert evaluator.trained == 3 and metrics["stopped"] is False and trial.user_attrs["rung"] == 3


def test_no_trial_goes_on_to_another_rung_once_the_time_limit_has_passed(monkeypatch):
    """Otherwise a trial started just before the limit trains on to the top rung (9 epochs here)
    and the search overruns its time by a whole trial."""
    study = FakeStudy([])
    schedule = RungSchedule((1, 3, 9), keep=0.5)
    clock = iter([10.0, 20.0])  # the time at rung 1, then at rung 2
    monkeypatch.setattr("nas.search.halving.time.monotonic", lambda: next(clock))
    evaluator = ScriptedRungs([0.8, 0.85, 0.9], schedule)
    h = SuccessiveHalving(study, Objective(ObjectiveConfig()), evaluator)
    h.deadline = 15.0
    trial = RungTrial(study, 0, "a", 1.0)  # the first at every rung: ranked alone, it would go on
    metrics = h.evaluate(trial, SimpleNamespace(arch_id="a"), Measured(1.0, 1, 1))
    assert evaluator.trained == 2 and metrics["rung"] == 2 and metrics["stopped"] is True
    assert trial.user_attrs["stopped_by"] == "time limit" and trial.user_attrs["rung_scores"] == [0.8, 0.85]


def test_a_failed_rung_ends_the_trial_without_a_record():
    study = FakeStudy([])
    evaluator = ScriptedRungs([0.8], RungSchedule((1, 3)))

    def diverging(spec):
        yield {"accuracy": 0.0, "status": "diverged", "rung": 1}

    evaluator.evaluate_rungs = diverging
    trial = RungTrial(study, 0, "a", 1.0)
    metrics = SuccessiveHalving(study, Objective(ObjectiveConfig()), evaluator).evaluate(
        trial, SimpleNamespace(arch_id="a"), Measured(1.0, 1, 1))
    assert metrics["status"] == "diverged" and "rung_scores" not in trial.user_attrs


# --------------------------------------------------------------------------------------
# training on from rung to rung


@pytest.fixture(scope="module")
def toy():
    return load_dataset("synthetic", train=200, test=50)


class Counting:
    """Counts calls of a function of nas.evaluate (train: networks built from scratch; fit:
    trainings continued in memory)."""

    def __init__(self, monkeypatch, name):
        self.calls, self.real = 0, getattr(nas.evaluate, name)
        monkeypatch.setattr(nas.evaluate, name, self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.real(*args, **kwargs)


def test_rungs_train_on_in_memory_and_are_cached_per_rung(toy, tmp_path, monkeypatch):
    spec = ArchSpec.from_string(TINY)
    cache = tmp_path / "cache.jsonl"
    built, continued = Counting(monkeypatch, "train"), Counting(monkeypatch, "fit")
    evaluator = make_evaluator("train", dataset=toy, cache_path=cache, schedule={"rungs": [1, 2, 4]}, **FAST)
    rungs = list(evaluator.evaluate_rungs(spec))
    assert [m["rung"] for m in rungs] == [1, 2, 3] and [m["rung_budget"] for m in rungs] == [1, 2, 4]
    assert [m["epochs_done"] for m in rungs] == [1, 2, 4]
    assert (built.calls, continued.calls) == (1, 2), "one network, trained on twice: never from zero"
    assert rungs[0]["train_time_s"] < rungs[1]["train_time_s"] < rungs[2]["train_time_s"]  # cumulative
    plain = make_evaluator("train", dataset=toy, epochs=1, **FAST).evaluate(spec)
    assert rungs[0]["accuracy"] == plain["accuracy"], "rung 1 is the plain 1-epoch training"
    built.calls = continued.calls = 0

    # Another process, same cache: every rung answered, nothing trained
    again = make_evaluator("train", dataset=toy, cache_path=cache, schedule={"rungs": [1, 2, 4]}, **FAST)
    assert [m["accuracy"] for m in again.evaluate_rungs(spec)] == [m["accuracy"] for m in rungs]
    assert (built.calls, continued.calls, again.hits, again.misses) == (0, 0, 3, 0)

    # A trial stopped after rung 1 never trains rung 2; a later one that goes on from the cached
    # rung 1 rebuilds the network (same seeds, same result) and trains on
    other = tmp_path / "other.jsonl"
    stream = make_evaluator("train", dataset=toy, cache_path=other, schedule={"rungs": [1, 2, 4]},
                            **FAST).evaluate_rungs(spec)
    next(stream)
    stream.close()
    assert (built.calls, continued.calls) == (1, 0)
    resumed = make_evaluator("train", dataset=toy, cache_path=other, schedule={"rungs": [1, 2, 4]}, **FAST)
    stream = resumed.evaluate_rungs(spec)
    assert next(stream)["accuracy"] == rungs[0]["accuracy"] and built.calls == 1
    assert next(stream)["accuracy"] == rungs[1]["accuracy"] and (built.calls, continued.calls) == (2, 1)
    stream.close()
    assert resumed.rung_key(1) != resumed.rung_key(2)


def test_a_rung_result_is_never_taken_for_another_schedules(toy, tmp_path):
    cache = tmp_path / "cache.jsonl"
    short = make_evaluator("train", dataset=toy, cache_path=cache, schedule={"rungs": [1, 3]}, **FAST)
    other = make_evaluator("train", dataset=toy, cache_path=cache, schedule={"rungs": [2, 3]}, **FAST)
    assert short.rung_key(2) != other.rung_key(2)  # 3 epochs as 1 + 2 differ from 2 + 1
    assert short.rung_key(1) != make_evaluator("train", dataset=toy, epochs=1, **FAST).budget_key
    assert short.budget_key != make_evaluator("train", dataset=toy, cache_path=cache,
                                              schedule={"rungs": [1, 3], "keep": 0.5}, **FAST).budget_key


def test_fraction_rungs_see_nested_shares_each_image_once(toy):
    budget = Budget(seed=3)
    slices = [training_slice(toy, budget, a, b) for a, b in ((0, 0.25), (0.25, 0.5), (0.5, 1.0))]
    seen = [s.labels.tolist() for s in slices]
    assert sum(len(s) for s in seen) == len(toy.train)
    first_half = training_subset(toy, Budget(seed=3, fraction=0.5))
    joined = sorted(slices[0].images.flatten(1).sum(1).tolist() + slices[1].images.flatten(1).sum(1).tolist())
    assert joined == sorted(first_half.images.flatten(1).sum(1).tolist())
    with pytest.raises(ValueError, match="select the same images"):
        training_slice(toy, budget, 0.5, 0.5001)
    evaluator = make_evaluator("train", dataset=toy, schedule={"rungs": [0.25, 1.0], "unit": "fraction"}, **FAST)
    rungs = list(evaluator.evaluate_rungs(ArchSpec.from_string(TINY)))
    assert [m["rung_budget"] for m in rungs] == [0.25, 1.0]
    assert [m["epochs_done"] for m in rungs] == pytest.approx([0.25, 1.0])


def test_evaluate_with_a_schedule_trains_to_the_top_rung(toy):
    evaluator = make_evaluator("train", dataset=toy, schedule={"rungs": [1, 2]}, **FAST)
    metrics = evaluator.evaluate(ArchSpec.from_string(TINY))
    assert metrics["rung"] == 2 and metrics["epochs_done"] == 2


# --------------------------------------------------------------------------------------
# the report


def test_a_report_without_rungs_is_unchanged():
    frame = pd.DataFrame({"state": ["COMPLETE"], "score": [0.5], "latency_ms": [1.0]})
    assert rungs_section(frame) == "" and [label for label, *_ in rung_groups(frame)] == ["trials"]


# --------------------------------------------------------------------------------------
# experiments


def config(tmp_path, schedule, trials=8, **changes):
    data = {"name": "h", "space": {"name": "mobilenet_v1", "options": {"width_mult": 0.25}}, "latency": "unused.csv",
            "trials": trials, "seed": 1, "output": str(tmp_path / "run"),
            "sampler": {"kind": "random"}, "dataset": "synthetic",
            "evaluator": {"kind": "train", "options": FAST, "schedule": schedule}}
    data.update(changes)
    return parse_config(data)


SMALL = (12, 12, 1)  # small images and few of them: a trial trains in about half a second


def small_evaluator(cfg):
    from nas.search.runner import make_experiment_evaluator

    evaluator = make_experiment_evaluator(cfg)
    evaluator.source.dataset = load_dataset("synthetic", train=200, test=30, shape=SMALL)
    return evaluator


def search(cfg, evaluator=None, worker=None):
    summary = run_experiment(cfg, progress=False, evaluator=evaluator or small_evaluator(cfg),
                             latency_model=FakeLatency(SMALL), log=lambda line: None, worker=worker)
    return summary, open_run(cfg.output_dir(), storage=cfg.storage)


def check_rung_records(study, schedule):
    """Every evaluated trial's records agree with each other and with its value."""
    done = [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if "score" in t.user_attrs]
    for t in done:
        attrs = t.user_attrs
        scores = attrs["rung_scores"]
        assert attrs["rung"] == len(scores) and 1 <= attrs["rung"] <= schedule.top
        assert attrs["rung_budget"] == schedule.rungs[attrs["rung"] - 1]
        assert attrs["stopped"] == (attrs["rung"] < schedule.top)
        assert t.values[0] == scores[-1] == attrs["score"]
        assert attrs["metrics"]["rung"] == attrs["rung"]
    return done


# --------------------------------------------------------------------------------------
# the search


def test_search_stops_some_trials_at_rung_1_and_trains_others_to_the_top(tmp_path):
    cfg = config(tmp_path, {"rungs": [1, 2], "keep": 0.33}, trials=6)
    summary, study = search(cfg)
    done = check_rung_records(study, RungSchedule((1, 2), 0.33))
    assert summary.completed == 6 == len(done)  # the budget counts candidates, wherever they stopped
    rungs = [t.user_attrs["rung"] for t in done]
    assert rungs.count(1) >= 2 and rungs.count(2) >= 2, rungs
    frame = trials_frame(study)
    assert {"rung", "stopped"} <= set(frame.columns)
    groups = rung_groups(evaluated(frame))
    assert [label for label, *_ in groups] == ["rung 1 (1 epoch), stopped there", "rung 2 (2 epochs), top"]
    assert [len(trials) for _, trials, _ in groups] == [rungs.count(1), rungs.count(2)]
    report = (tmp_path / "run" / "report.html").read_text()
    assert "<h2>Successive halving</h2>" in report
    assert f"<td class='num'>2</td><td class='num'>2</td><td class='num'>{rungs.count(2)}</td>" in report


class SlowRungs:
    """The train evaluator, each of its rungs taking ``seconds`` longer."""

    def __init__(self, inner, seconds):
        self.inner, self.seconds = inner, seconds

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def evaluate_rungs(self, spec):
        for metrics in self.inner.evaluate_rungs(spec):
            time.sleep(self.seconds)
            yield metrics


def test_a_timed_search_promotes_no_trial_past_its_time_limit(tmp_path):
    # the first trial at every rung goes on, so without the limit trial 0 would train all 3 rungs
    cfg = config(tmp_path, {"rungs": [1, 2, 3], "keep": 0.5}, trials=None, timeout_s=1.0)
    summary, study = search(cfg, evaluator=SlowRungs(small_evaluator(cfg), 0.6))
    first = study.trials[0]
    assert first.state == TrialState.COMPLETE and first.user_attrs["rung"] < 3  # rung 2 ends after 1.2 s
    assert first.user_attrs["stopped"] is True and first.user_attrs["stopped_by"] == "time limit"
    assert summary.completed == 1 and first.values[0] == first.user_attrs["rung_scores"][-1]


class KillAtRung:
    """The train evaluator, with a Ctrl-C while the ``k``-th network that was promoted trains
    its rung 2."""

    def __init__(self, inner, k):
        self.inner, self.k, self.promoted = inner, k, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def evaluate_rungs(self, spec):
        for metrics in self.inner.evaluate_rungs(spec):
            if metrics["rung"] == 2:
                self.promoted += 1
                if self.promoted == self.k:
                    raise KeyboardInterrupt
            yield metrics


def test_resume_after_a_kill_keeps_the_rung_records_consistent(tmp_path):
    cfg = config(tmp_path, {"rungs": [1, 2], "keep": 0.5}, trials=5)
    killing = KillAtRung(small_evaluator(cfg), k=2)
    summary, study = search(cfg, killing)
    assert summary.interrupted
    killed = [t for t in study.get_trials() if t.user_attrs.get("interrupted")]
    assert len(killed) == 1 and killed[0].user_attrs["rung_scores"] and "stopped" not in killed[0].user_attrs
    summary, study = search(cfg)  # resume: the killed network is queued again and trains from scratch
    done = check_rung_records(study, RungSchedule((1, 2), 0.5))
    assert summary.completed == 5 == len(done)
    retried = [t for t in done if t.user_attrs["arch_id"] == killed[0].user_attrs["arch_id"]]
    assert len(retried) == 1 and retried[0].user_attrs.get("retry_of") == killed[0].number
    assert retried[0].user_attrs["rung_scores"][0] == killed[0].user_attrs["rung_scores"][0]


def test_a_trial_training_to_the_top_rung_counts_as_in_flight():
    import datetime

    from nas.search.controller import Controller

    now = datetime.datetime.now()

    def finished(seconds):
        return SimpleNamespace(state=TrialState.COMPLETE, user_attrs={"score": 0.5},
                               datetime_start=now - datetime.timedelta(seconds=seconds + 1000),
                               datetime_complete=now - datetime.timedelta(seconds=1000))

    # nine trials stopped at rung 1 (10 s each), one trained to the top (90 s); another worker's
    # trial has been training for 60 s
    trials = [finished(10)] * 9 + [finished(90)] + [
        SimpleNamespace(state=TrialState.RUNNING, user_attrs={}, datetime_start=now - datetime.timedelta(seconds=60))]
    heartbeat = SimpleNamespace(grace_period_s=2, interval_s=1)
    assert Controller.in_flight(SimpleNamespace(heartbeat=heartbeat, halving=object()), trials) == 1
    assert Controller.in_flight(SimpleNamespace(heartbeat=heartbeat, halving=None), trials) == 0  # median: 10 s


# --------------------------------------------------------------------------------------
# config and option errors


@pytest.mark.parametrize("schedule, message", [
    ({"rungs": [1, 3, 3]}, r"evaluator.schedule.rungs must be strictly increasing, got 3 after 3"),
    ({"rungs": [3, 1]}, r"strictly increasing, got 1 after 3"),
    ({"rungs": [0, 1]}, r"rungs must be > 0, got 0"),
    ({"rungs": [1, 2.5]}, r"whole numbers of epochs.*got 2.5"),
    ({"rungs": [0.1, 1.5], "unit": "fraction"}, r"at most 1, got 1.5"),
    ({"rungs": [1, 2], "keep": 1}, r"evaluator.schedule.keep must be in \(0, 1\), got 1"),
    ({"rungs": [1, 2], "keep": 0}, r"keep must be in \(0, 1\), got 0"),
    ({"rungs": []}, r"rungs must be a non-empty list"),
    ({"rungs": [1, 2], "unit": "fractions"}, r"unit must be one of \['epochs', 'fraction'\], got 'fractions'"),
    ({"keep": 0.5}, r"missing required key evaluator.schedule.rungs"),
    ({"rungs": [1, 2], "eta": 3}, r"unknown key evaluator.schedule.eta"),
])
def test_bad_schedules_are_config_errors_naming_the_value(tmp_path, schedule, message):
    with pytest.raises(ConfigError, match=message):
        config(tmp_path, schedule)


def test_schedule_needs_the_train_evaluator_and_a_pareto_or_mnas_objective(tmp_path):
    with pytest.raises(ConfigError, match="needs the train evaluator, got kind 'proxy'"):
        config(tmp_path, None, evaluator={"kind": "proxy", "schedule": {"rungs": [1, 2]}})
    netadapt = {"kind": "netadapt", "netadapt": {"start": "mobilenet_v1_0.25", "budget_ms": 1.0}}
    with pytest.raises(ConfigError, match="does not apply to the netadapt objective"):
        config(tmp_path, {"rungs": [1, 2]}, objective=netadapt)


@pytest.mark.parametrize("options, message", [
    ({"epochs": 3, "schedule": {"rungs": [1, 3]}}, r"epochs 3 conflicts with the schedule"),
    ({"fraction": 0.5, "schedule": {"rungs": [0.1, 1.0], "unit": "fraction"}}, r"fraction 0.5 conflicts"),
    ({"epochs": 2, "schedule": {"rungs": [0.1, 1.0], "unit": "fraction"}}, r"epochs 2 conflicts"),
    ({"schedule": {"rungs": [1, 2], "keep": 2}}, r"schedule.keep must be a number in \(0, 1\).*got 2"),
    ({"schedule": {"rung": [1, 2]}}, r"unknown schedule key 'rung'"),
    ({"schedule": [1, 2]}, r"schedule must be a mapping"),
])
def test_evaluator_refuses_a_schedule_the_budget_contradicts(options, message):
    with pytest.raises((EvaluatorError, ScheduleError), match=message):
        make_evaluator("train", dataset="synthetic", **options)


def test_no_schedule_leaves_the_evaluator_as_it_was():
    evaluator = make_evaluator("train", dataset="synthetic", epochs=1)
    assert evaluator.schedule is None and "rungs" not in evaluator.budget_key
    assert parse_config({"name": "t", "space": "mobilenet_v1", "latency": "x.csv", "trials": 1}).evaluator.schedule \
        is None
    assert nas.train.segment_seed(7, 0) == 7 and nas.train.segment_seed(7, 1) != 7


# --------------------------------------------------------------------------------------
# many workers on PostgreSQL


POSTGRES = os.environ.get("NAS_TEST_POSTGRES_URL")


WORKER = """
import json, sys
from nas.config import parse_config
from tests.test_halving import search
search(parse_config(json.loads(sys.argv[1])), worker=int(sys.argv[2]))
"""


@pytest.mark.skipif(not POSTGRES, reason="NAS_TEST_POSTGRES_URL is not set (tools/postgres-for-tests.sh starts one)")
def test_two_workers_share_the_rungs_on_postgresql(tmp_path):
    import json
    import subprocess
    import sys
    import uuid

    import optuna

    from nas.search.study import make_storage

    data = config(tmp_path, {"rungs": [1, 2], "keep": 0.33}, trials=6, storage=POSTGRES,
                  study=f"halving-{uuid.uuid4().hex[:8]}").to_dict()
    root = Path(__file__).resolve().parents[1]
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(data), str(i)], cwd=root,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = optuna.load_study(study_name=data["study"], storage=make_storage(POSTGRES))
    done = check_rung_records(study, RungSchedule((1, 2), 0.33))
    assert len({t.user_attrs["arch_id"] for t in done}) == len(done) >= 6
    rungs = [t.user_attrs["rung"] for t in done]
    assert rungs.count(1) >= 2 and rungs.count(2) >= 1, rungs
