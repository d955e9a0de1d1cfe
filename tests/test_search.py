import math
import shutil
import threading
import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.config import parse_config
from nas.experiment import run_experiment
from nas.report import format_pareto, open_run, pareto_frame, trials_frame
from nas.search.objectives import Measured, Objective, mnas_reward
from nas.search.study import Heartbeat
from tests.fakes import FakeEvaluator, FakeLatency


def make_config(tmp_path, **changes):
    data = {"name": "t", "space": "mobilenet_v1", "latency": "unused.csv", "trials": 8, "seed": 1,
            "output": str(tmp_path / "run"), "sampler": {"kind": "nsga2", "population_size": 4}}
    data.update(changes)
    return parse_config(data)


def run(config, evaluator=None, **kwargs):
    evaluator = evaluator or FakeEvaluator()
    summary = run_experiment(config, progress=False, evaluator=evaluator, latency_model=FakeLatency(),
                             log=lambda line: None, **kwargs)
    return summary, evaluator, open_run(config.output_dir())


def test_mnas_reward():
    assert mnas_reward(0.9, 2.0, 2.0, -0.07, -0.07) == pytest.approx(0.9)
    assert mnas_reward(0.9, 4.0, 2.0, -0.07, -0.07) == pytest.approx(0.9 * 2 ** -0.07)
    assert mnas_reward(0.9, 1.0, 2.0, 0.0, -1.0) == pytest.approx(0.9)  # hard: no bonus under T
    assert mnas_reward(0.9, 4.0, 2.0, 0.0, -1.0) == pytest.approx(0.45)


def test_objective_values_and_constraints():
    config = parse_config({"name": "t", "space": "hybrid", "latency": "x", "trials": 1,
                           "objective": {"max_latency_ms": 2.0, "max_params": 1000, "extra": ["macs"]}})
    objective = Objective(config.objective)
    m = Measured(latency_ms=3.0, macs=500, params=800, score=0.9)
    assert objective.names == ["accuracy", "latency_ms", "macs"]
    assert objective.directions == ["maximize", "minimize", "minimize"]
    assert objective.constraints(m) == pytest.approx([0.5, -0.2])
    assert not objective.feasible(m)
    assert objective.values(m) == [0.9, 3.0, 500.0]


def test_pareto_search_records_everything_and_reports(tmp_path):
    summary, evaluator, study = run(make_config(tmp_path))
    assert summary.completed == 8
    trials = study.get_trials()
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for t in trials:
        for key in ("arch_id", "spec", "spec_string", "latency_ms", "macs", "params", "score"):
            assert key in t.user_attrs
        assert t.values[1] == t.user_attrs["latency_ms"]
    # every distinct architecture was evaluated exactly once
    assert len(evaluator.calls) == len(set(evaluator.calls)) == len({t.user_attrs["arch_id"] for t in trials})
    folder = tmp_path / "run"
    for name in ("trials.csv", "pareto.csv", "pareto.png", "hypervolume.png", "report.html", "config.yaml", "study.db"):
        assert (folder / name).is_file(), name
    html = (folder / "report.html").read_text()
    assert "data:image/png;base64" in html and "Pareto front" in html and "mobilenet_v1" in html
    front = pareto_frame(trials_frame(study))
    assert not front.empty and front["latency_ms"].is_monotonic_increasing
    assert front["score"].is_monotonic_increasing  # along a front, slower must mean more accurate
    assert front["params"].tolist() == [study.trials[n].user_attrs["params"] for n in front["number"]]
    table = format_pareto(front, "accuracy")
    assert table.splitlines()[0].split()[:3] == ["trial", "accuracy", "latency"]
    assert len(table.splitlines()) == len(front) + 1


def test_latency_constraint_means_infeasible_nets_are_never_trained(tmp_path):
    config = make_config(tmp_path, objective={"kind": "pareto", "max_latency_ms": 0.4}, trials=12)
    summary, evaluator, study = run(config)
    completed = study.get_trials(states=(TrialState.COMPLETE,))
    infeasible = [t for t in completed if not t.user_attrs["feasible"]]
    assert infeasible, "the limit should exclude some sampled networks"
    assert summary.infeasible == len(infeasible)
    # a repeated infeasible architecture is answered from the record, not counted again
    assert len({t.user_attrs["arch_id"] for t in completed}) == len(completed) == 12
    trained = {t.user_attrs["arch_id"] for t in study.get_trials() if t.user_attrs["feasible"]}
    assert set(evaluator.calls) == trained
    for t in infeasible:
        assert t.user_attrs["latency_ms"] > 0.4 and "score" not in t.user_attrs
        assert t.system_attrs["constraints:latency_ms"] > 0
    front = pareto_frame(trials_frame(study))
    assert (front["latency_ms"] <= 0.4).all()


def test_mnas_objective_single_value(tmp_path):
    config = make_config(tmp_path, objective={"kind": "mnas", "target_ms": 0.5}, sampler={"kind": "tpe"}, trials=6)
    _, _, study = run(config)
    for t in study.get_trials():
        expected = mnas_reward(t.user_attrs["score"], t.user_attrs["latency_ms"], 0.5, -0.07, -0.07)
        assert t.values == [pytest.approx(expected)]


def test_repeated_architecture_is_answered_from_the_study(tmp_path):
    config = make_config(tmp_path, trials=3, baselines=["mobilenet_v1_1.0", "mobilenet_v1_1.0"])
    # the same member baseline listed twice is queued once; queue it again by hand as well
    _, evaluator, study = run(config)
    study.enqueue_trial(study.trials[0].params)
    _, evaluator2, study = run(make_config(tmp_path, trials=4, baselines=["mobilenet_v1_1.0"]))
    repeats = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert len(repeats) == 1  # the hand-queued copy
    repeat = repeats[0]
    assert repeat.user_attrs["duplicate_of"] == 0 and repeat.state == TrialState.PRUNED
    assert repeat.user_attrs["score"] == study.trials[0].user_attrs["score"]  # answered from the record
    # the repeat cost no budget: the fourth completed trial is a new architecture, the only one evaluated
    completed = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(completed) == 4 and len({t.user_attrs["arch_id"] for t in completed}) == 4
    assert evaluator2.calls == [completed[-1].user_attrs["arch_id"]]
    assert study.trials[0].user_attrs["baseline"] == "mobilenet_v1_1.0"


def test_interrupted_search_resumes_without_loss_or_repeat(tmp_path):
    config = make_config(tmp_path, trials=6)
    summary, first, study = run(config, evaluator=FakeEvaluator(interrupt_at=4))
    assert summary.interrupted
    done_before = {t.number: t.values for t in study.get_trials() if t.state.name == "COMPLETE"}
    interrupted = [t for t in study.get_trials() if t.user_attrs.get("interrupted")]
    assert len(done_before) == 3 and len(interrupted) == 1
    summary, second, study = run(config)
    assert summary.completed == 6
    for number, values in done_before.items():
        assert study.trials[number].values == values  # nothing completed was lost
    assert second.calls[0] == interrupted[0].user_attrs["arch_id"]  # the cut trial runs first
    evaluated = [a for a in first.calls[:3] + second.calls]
    assert len(evaluated) == len(set(evaluated))  # nothing completed was repeated


def test_diverged_training_fails_the_trial_but_not_the_search(tmp_path):
    summary, _, study = run(make_config(tmp_path, trials=4), evaluator=FakeEvaluator(fail_at=2))
    failed = [t for t in study.get_trials() if t.state.name == "FAIL"]
    assert summary.completed == 4 and len(failed) == 1
    assert failed[0].user_attrs["reason"] == "loss became nan at step 3"


def test_netadapt_shrinks_toward_the_budget(tmp_path):
    start = FakeLatency().predict(__import__("nas.ops", fromlist=["resolve"]).resolve(
        __import__("nas.space", fromlist=["get_reference"]).get_reference("mobilenet_v1_1.0")))
    config = make_config(tmp_path, objective={"kind": "netadapt", "netadapt": {
        "start": "mobilenet_v1_1.0", "budget_ms": start * 0.5, "initial_reduction": 0.2, "decay": 0.9,
        "max_iterations": 6}}, trials=None, sampler={"kind": "random"})
    _, evaluator, study = run(config)
    trajectory = study.user_attrs["netadapt_trajectory"]
    latencies = [step["latency_ms"] for step in trajectory]
    assert latencies[0] == pytest.approx(start)
    assert all(b < a for a, b in zip(latencies, latencies[1:]))
    assert latencies[-1] <= start * 0.5 + 1e-9
    for step in trajectory[1:]:
        assert step["latency_ms"] <= step["target_ms"] + 1e-9
    assert len(study.trials) > len(trajectory)  # one proposal per stage per iteration
    assert "NetAdapt trajectory" in (tmp_path / "run" / "report.html").read_text()


def test_study_for_other_objectives_is_refused(tmp_path):
    run(make_config(tmp_path, trials=2))
    with pytest.raises(ValueError, match=r"made with another setup(.|\n)*objective.directions"):
        run(make_config(tmp_path, trials=2, objective={"kind": "mnas", "target_ms": 1.0}))


def test_hypervolume_history_is_monotone(tmp_path):
    from nas.report import hypervolume_history

    _, _, study = run(make_config(tmp_path, trials=8))
    history = hypervolume_history(trials_frame(study), 2.0)["hypervolume"].tolist()
    assert all(b >= a for a, b in zip(history, history[1:])) and history[-1] > 0
    assert not any(math.isnan(v) for v in history)


def test_unknown_space_fails_before_any_work(tmp_path):
    evaluator = FakeEvaluator()
    with pytest.raises(Exception, match="unknown search space 'mobilenet_v9'.*did you mean"):
        run(make_config(tmp_path, space="mobilenet_v9"), evaluator=evaluator)
    assert evaluator.calls == []


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="output folder .* is not writable"):
        run(make_config(tmp_path, output=str(blocker / "run")))


def test_missing_latency_table_is_a_clear_error(tmp_path):
    from nas.search.runner import ExperimentError

    config = make_config(tmp_path, latency=str(tmp_path / "nope.csv"))
    with pytest.raises(ExperimentError, match="latency.table .*nope.csv' does not exist; measure one with"):
        run_experiment(config, progress=False, evaluator=FakeEvaluator())


SHIPPED_TABLE = Path(__file__).resolve().parents[1] / "latency_tables" / "mobilenet_v1-28x28x1-ort-xeon2c.csv"


def test_table_for_another_input_shape_fails_before_any_work(tmp_path):
    evaluator = FakeEvaluator(input_shape=(32, 32, 3))
    config = make_config(tmp_path, latency=str(SHIPPED_TABLE))
    with pytest.raises(ValueError, match="measured for input 28x28x1, not 32x32x3"):
        run_experiment(config, progress=False, evaluator=evaluator, log=lambda line: None)
    assert evaluator.calls == []


def test_table_holding_nan_fails_before_any_work(tmp_path):
    from nas.latency.table import LatencyTableError

    table = tmp_path / "t.csv"
    lines = SHIPPED_TABLE.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("median")] = "nan"
    lines[3] = ",".join(cells)
    table.write_text("\n".join(lines) + "\n")
    shutil.copy(SHIPPED_TABLE.with_suffix(".json"), table.with_suffix(".json"))
    evaluator = FakeEvaluator()
    with pytest.raises(LatencyTableError, match="line 4.*finite number"):
        run_experiment(make_config(tmp_path, latency=str(table)), progress=False, evaluator=evaluator,
                       log=lambda line: None)
    assert evaluator.calls == []


def test_unreachable_storage_errors_quickly_without_leaking_the_password(tmp_path):
    import time

    from nas.search.study import StorageError, make_storage

    start = time.monotonic()
    with pytest.raises(StorageError) as exc:
        make_storage("postgresql://nas:s3cret@127.0.0.1:1/nas")
    assert time.monotonic() - start < 15
    assert "s3cret" not in str(exc.value) and "***" in str(exc.value)


def test_passwords_never_reach_the_run_folder(tmp_path):
    from nas.search.runner import public_config, write_config_copy

    config = make_config(tmp_path, storage="postgresql://nas:s3cret@db.example:5432/nas")
    assert "s3cret" not in str(public_config(config))
    write_config_copy(config, tmp_path / "copy")
    assert "s3cret" not in (tmp_path / "copy" / "config.yaml").read_text()


def test_systematic_evaluation_errors_end_the_search(tmp_path):
    class Broken(FakeEvaluator):
        def evaluate(self, spec):
            self.calls.append(spec.arch_id)
            raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        run(make_config(tmp_path, trials=10), evaluator=Broken())
    study = open_run(tmp_path / "run")
    failed = [t for t in study.get_trials() if t.state.name == "FAIL"]
    assert len(failed) == 3 and "No space left on device" in failed[0].user_attrs["reason"]


def test_missing_dataset_fails_before_the_first_trial(tmp_path):
    config = make_config(tmp_path, dataset={"name": "fashion-mnist", "path": str(tmp_path / "nope")},
                         evaluator={"kind": "train", "options": {"epochs": 1}})
    with pytest.raises(FileNotFoundError, match="fashion-mnist not found"):
        run_experiment(config, progress=False, latency_model=FakeLatency())
    assert not (tmp_path / "run" / "study.db").exists()


def test_corrupt_dataset_fails_before_the_first_trial(tmp_path):
    from nas.data import DataError

    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"\x00\x00\x08\x03garbage")
    config = make_config(tmp_path, dataset={"name": "fashion-mnist", "path": str(folder)},
                         evaluator={"kind": "train", "options": {"epochs": 1}})
    with pytest.raises(DataError):
        run_experiment(config, progress=False, latency_model=FakeLatency())


def test_baselines_are_trained_even_when_infeasible(tmp_path):
    config = make_config(tmp_path, trials=3, objective={"kind": "pareto", "max_latency_ms": 0.01},
                         baselines=["mobilenet_v1_1.0"])
    _, evaluator, study = run(config)
    baseline = study.trials[0]
    assert baseline.user_attrs["baseline"] == "mobilenet_v1_1.0" and not baseline.user_attrs["feasible"]
    assert "score" in baseline.user_attrs and evaluator.calls[0] == baseline.user_attrs["arch_id"]
    assert pareto_frame(trials_frame(study)).empty  # infeasible networks never make the front


def test_controller_time_is_the_run_minus_evaluation(tmp_path):
    # evaluations long beside the controller's own work, even on a loaded machine
    summary, evaluator, _ = run(make_config(tmp_path, trials=3), evaluator=FakeEvaluator(sleep_s=0.6))
    assert len(evaluator.calls) == 3
    assert summary.evaluation_s >= 1.8  # every evaluation counted...
    assert summary.controller_s == pytest.approx(summary.elapsed_s - summary.evaluation_s)
    assert summary.controller_s < 1.8  # ...and none of it counted as the controller's own cost


class FailedByAnotherWorker(FakeEvaluator):
    """On its second evaluation, fails the running trial through a second connection to the
    study, as another worker's dead-worker check does when this worker's heartbeats stop."""

    def __init__(self, storage_url: str, study_name: str):
        super().__init__()
        self.storage_url, self.study_name = storage_url, study_name

    def evaluate(self, spec):
        metrics = super().evaluate(spec)
        if len(self.calls) == 2:
            other = optuna.load_study(study_name=self.study_name, storage=self.storage_url)
            for trial in other.get_trials(states=(TrialState.RUNNING,)):
                other._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return metrics


def test_trial_failed_by_another_worker_meanwhile_does_not_end_the_search(tmp_path):
    config = make_config(tmp_path, trials=5)
    evaluator = FailedByAnotherWorker(config.storage_url(), config.study_name)
    summary, _, study = run(config, evaluator=evaluator)
    assert summary.failed == 1 and summary.completed == 5
    failed = study.get_trials(states=(TrialState.FAIL,))
    # the other worker's verdict stands; nothing of this worker's evaluation was written
    assert len(failed) == 1 and not {"score", "status", "metrics"} & set(failed[0].user_attrs)


class BeatRecorder(optuna.storages.RDBStorage):
    """A storage with heartbeats that only records which trials beat (no database)."""

    def __init__(self, interval_s: float):  # RDBStorage's own __init__ (a database) is not called
        self.interval_s, self.beats = interval_s, []
        self.grace_period = None  # as RDBStorage's attribute: None means twice the interval

    def get_heartbeat_interval(self):
        return self.interval_s

    def record_heartbeat(self, trial_id):
        self.beats.append(trial_id)


def wait_until(condition, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_heartbeat_beats_only_the_trial_in_its_block_and_its_thread_ends_when_idle():
    storage = BeatRecorder(interval_s=0.01)
    heartbeat = Heartbeat(storage)
    earlier = set(threading.enumerate())  # other tests' runs may still have theirs
    with heartbeat.beating(7):
        assert wait_until(lambda: storage.beats.count(7) >= 3)  # beats again and again
    with heartbeat.beating(8):  # the next trial is beaten instead
        assert wait_until(lambda: 8 in storage.beats)
    after = len(storage.beats)
    assert wait_until(lambda: not set(threading.enumerate()) - earlier)
    assert len(storage.beats) == after  # nothing beats once the block has ended
    assert set(storage.beats) == {7, 8} and storage.beats == sorted(storage.beats)  # 8 only after 7's block
    with heartbeat.beating(9):  # a new thread after an idle spell
        assert wait_until(lambda: 9 in storage.beats)


def test_a_search_shows_the_user_no_optuna_experimental_warning(tmp_path):
    # Naming the study's objectives is experimental in Optuna; the search does it for the report,
    # and the user, who did not ask for it, should not be warned about it.
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run(make_config(tmp_path, trials=2))
    experimental = [w for w in seen if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]
    assert not experimental, [str(w.message) for w in experimental]
