"""Regression tests for issue 20's six bugs that live in the search layer and the config:
resume without repeats, study identity, safe names, finite numbers, simultaneous workers."""

import math
import multiprocessing
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from nas.config import ConfigError, load_config, parse_config
from nas.search.controller import MAX_CONSECUTIVE_DUPLICATES, Controller
from nas.search.objectives import Objective
from nas.search.runner import resume_seed
from nas.space import get_space
from tests.fakes import FakeEvaluator, FakeLatency
from tests.test_search import make_config, run

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "latency_tables" / "mobilenet_v1-28x28x1-ort-xeon2c.csv"


def distinct_completed(study: optuna.Study) -> tuple[int, int]:
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return len(completed), len({t.user_attrs["arch_id"] for t in completed})


# ---- 1. resume continues the search instead of replaying it


def test_resumed_runs_reach_the_budget_with_distinct_architectures_and_train_none_twice(tmp_path):
    evaluated = []
    for budget in (3, 6, 9):
        summary, evaluator, study = run(make_config(tmp_path, trials=budget))
        evaluated += evaluator.calls
        assert distinct_completed(study) == (budget, budget)
    assert len(evaluated) == len(set(evaluated)) == 9  # no network trained twice, none skipped


def test_resume_reseeds_the_sampler_deterministically():
    assert resume_seed(7, 0) == 7  # a new study starts from the configured seed
    assert resume_seed(7, 12) == resume_seed(7, 12) != resume_seed(7, 13)
    assert 0 <= resume_seed(2**31 - 1, 10**6) < 2**31


def test_nas_search_resumed_from_the_command_line_holds_distinct_networks(tmp_path):
    config = {"name": "resume", "space": "mobilenet_v1", "dataset": "synthetic",
              "evaluator": {"kind": "tiny", "options": {"batch_size": 4}},
              "latency": str(TABLE), "trials": 3, "seed": 0, "sampler": {"kind": "random"}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    for budget in (3, 6, 9):
        done = subprocess.run([sys.executable, "-m", "nas.cli", "search", "exp.yaml", "--n-trials", str(budget),
                               "--no-progress"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{tmp_path / 'runs/resume/study.db'}")
    assert distinct_completed(study) == (9, 9)


def test_a_sampler_that_only_repeats_stops_the_run_with_a_note(tmp_path):
    class Repeating(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, distribution):
            return distribution.choices[0]

    config = make_config(tmp_path, trials=5)
    space = get_space("mobilenet_v1", (28, 28, 1), 10)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=Repeating())
    controller = Controller(study=study, space=space, evaluator=FakeEvaluator(), latency_model=FakeLatency(),
                            objective=Objective(config.objective), trials=5, progress=False, log=lambda line: None)
    summary = controller.run()
    assert summary.completed == 1 and summary.duplicates == MAX_CONSECUTIVE_DUPLICATES
    assert any("already holds" in note for note in summary.notes)


# ---- 2. a study is resumed only with the setup that made it


def test_a_study_made_with_another_setup_is_refused_with_the_keys_that_differ(tmp_path):
    class OtherEvaluator(FakeEvaluator):
        budget_key = "fake-3-epochs"

    run(make_config(tmp_path, trials=2))
    with pytest.raises(ValueError) as refused:
        run(make_config(tmp_path, trials=4), evaluator=OtherEvaluator())
    message = str(refused.value)
    assert "evaluator: 'fake' -> 'fake-3-epochs'" in message and "--force-new" in message

    class SlowerLatency(FakeLatency):
        def predict(self, ops):
            return 2 * super().predict(ops)

    from nas.experiment import run_experiment

    with pytest.raises(ValueError, match="latency.fingerprint"):
        run_experiment(make_config(tmp_path, trials=4), progress=False, evaluator=FakeEvaluator(),
                       latency_model=SlowerLatency(), log=lambda line: None)
    with pytest.raises(ValueError, match=r"space.name: 'mobilenet_v1' -> 'mobilenet_v2'"):
        run(make_config(tmp_path, trials=4, space="mobilenet_v2"))


def test_force_new_starts_a_study_beside_the_old_one_and_a_rerun_resumes_it(tmp_path):
    class OtherEvaluator(FakeEvaluator):
        budget_key = "fake-3-epochs"

    _, _, old = run(make_config(tmp_path, trials=2))
    old_trials = len(old.trials)
    _, _, new = run(make_config(tmp_path, trials=3), evaluator=OtherEvaluator(), force_new=True)
    assert new.study_name == "t-2" and distinct_completed(new) == (3, 3)
    storage = f"sqlite:///{tmp_path / 'run/study.db'}"
    assert len(optuna.load_study(study_name="t", storage=storage).trials) == old_trials  # nothing deleted
    assert yaml.safe_load((tmp_path / "run/config.yaml").read_text())["study"] == "t-2"
    # the same command again resumes the study made with its setup, without --force-new
    _, _, again = run(make_config(tmp_path, trials=4), evaluator=OtherEvaluator())
    assert again.study_name == "t-2" and distinct_completed(again) == (4, 4)
    assert sorted(optuna.get_all_study_names(storage)) == ["t", "t-2"]


def test_the_same_setup_resumes_even_when_the_table_moved(tmp_path):
    run(make_config(tmp_path, trials=2, latency="old/place.csv"))
    _, _, study = run(make_config(tmp_path, trials=3, latency="new/place.csv"))
    assert study.study_name == "t" and distinct_completed(study) == (3, 3)


# ---- 3. names that become paths are single safe components


@pytest.mark.parametrize("name", ["..", "../x", "/abs", "a/b", ".hidden", "a\x00b", "x" * 101, "", "a b"])
def test_unsafe_run_and_study_names_are_refused(name):
    base = {"name": "ok", "space": "hybrid", "latency": "t.csv", "trials": 2}
    with pytest.raises(ConfigError, match="name"):
        parse_config({**base, "name": name})
    with pytest.raises(ConfigError, match="study"):
        parse_config({**base, "study": name})


def test_run_name_dot_dot_writes_nothing_outside_the_runs_folder(tmp_path):
    (tmp_path / "config.yaml").write_text("mine: true\n")
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({"name": "..", "space": "mobilenet_v1", "latency": str(TABLE),
                                                       "trials": 2, "dataset": "synthetic", "evaluator": "tiny"}))
    before = sorted(p.name for p in tmp_path.iterdir())
    done = subprocess.run([sys.executable, "-m", "nas.cli", "search", "exp.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "name must be one path component" in done.stderr and "'..'" in done.stderr
    assert (tmp_path / "config.yaml").read_text() == "mine: true\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ---- 4. every number is finite and in range


NUMERIC_FIELDS = [
    ("objective", "max_latency_ms", {}), ("objective", "target_ms", {"kind": "mnas"}),
    ("objective", "alpha", {"kind": "mnas", "target_ms": 1}), ("objective", "max_macs", {}),
    ("dataset", "val_fraction", {}), ("sampler", "population_size", {"kind": "nsga2"}),
    ("sampler", "candidates", {"kind": "nsga2"}), ("sampler", "n_startup_trials", {"kind": "tpe"}),
    (None, "trials", {}), (None, "timeout_s", {}), (None, "seed", {}), (None, "heartbeat_interval_s", {}),
]


ZERO_IS_INVALID = {"max_latency_ms", "target_ms", "max_macs", "val_fraction", "population_size", "candidates",
                   "trials", "timeout_s", "heartbeat_interval_s"}


BAD_NUMBERS = [".nan", ".inf", "-.inf", "-1000001", "0", "1e30", "true", "'3'"]


@pytest.mark.parametrize("section, key, extra, bad", [
    (*field, bad) for field in NUMERIC_FIELDS for bad in BAD_NUMBERS if bad != "0" or field[1] in ZERO_IS_INVALID])
def test_every_numeric_field_refuses_non_finite_out_of_range_and_mistyped_values(tmp_path, section, key, extra, bad):
    lines = ["name: exp", "space: hybrid", "latency: t.csv"] + ([] if key == "trials" else ["trials: 5"])
    if section is None:
        lines.append(f"{key}: {bad}")
    else:
        inner = ", ".join([f"{k}: {v}" for k, v in extra.items()] + [f"{key}: {bad}"])
        lines.append(f"{section}: {{{inner}}}")
    path = tmp_path / "exp.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    message = str(refused.value)
    where = key if section is None else f"{section}.{key}"
    assert where in message, message
    assert ("must be in" in message or "must be a finite number" in message or "must be a" in message
            or "must be an integer" in message), message


def test_a_range_error_names_the_key_the_value_and_the_range(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: exp\nspace: hybrid\nlatency: t.csv\ntrials: 5\nobjective: {max_latency_ms: .nan}\n")
    with pytest.raises(ConfigError, match=r"objective.max_latency_ms must be a finite number, got nan"):
        load_config(path)
    path.write_text("name: exp\nspace: hybrid\nlatency: t.csv\ntrials: 5\ndataset: {val_fraction: 1}\n")
    with pytest.raises(ConfigError, match=r"dataset.val_fraction must be in \(0, 1\), got 1"):
        load_config(path)
    assert math.isfinite(load_config(REPO / "experiments/quickstart.yaml").timeout_s)


# ---- 5. workers that start at the same moment join one study


def _search_at(url: str, output: str, start_at: float, results) -> None:
    from nas.experiment import run_experiment

    config = parse_config({"name": "race", "space": "mobilenet_v1", "latency": "t.csv", "trials": 3, "seed": 0,
                           "storage": url, "output": output})
    while time.time() < start_at:
        time.sleep(0.001)
    try:
        summary = run_experiment(config, progress=False, evaluator=FakeEvaluator(), latency_model=FakeLatency(),
                                 log=lambda line: None)
        results.put(("ok", summary.completed))
    except Exception as exc:  # reported to the test, which shows it
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _race(url: str, output: Path, workers: int = 3) -> list:
    """Start ``workers`` searches of one study at the same instant; their outcomes."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 5  # after every process has imported the package
    processes = [context.Process(target=_search_at, args=(url, str(output / f"w{i}"), start_at, results))
                 for i in range(workers)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    return outcomes


def test_simultaneous_workers_on_a_new_sqlite_file_join_one_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert _race(url, tmp_path) == [("ok", 3)] * 3
    assert distinct_completed(optuna.load_study(study_name="race", storage=url)) == (3, 3)


def test_simultaneous_workers_on_a_new_postgres_database_join_one_study(postgres_url, tmp_path):
    import sqlalchemy

    schema = f"race_{uuid.uuid4().hex[:8]}"  # a fresh schema: Optuna creates its tables at the same moment
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    url = f"{postgres_url}?options=-csearch_path%3D{schema}"
    try:
        assert _race(url, tmp_path) == [("ok", 3)] * 3
        assert optuna.get_all_study_names(url) == ["race"]
        assert distinct_completed(optuna.load_study(study_name="race", storage=url)) == (3, 3)
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def test_a_trial_asked_after_another_worker_filled_the_budget_is_withdrawn(tmp_path, monkeypatch):
    """The race the test above can lose: this worker reads the study (2 of 3 trials done), then
    another worker asks and completes the last trial before this one asks its own."""
    import nas.search.controller as controller_module

    ask, meanwhile = controller_module.ask, []

    def another_worker_goes_first(study):
        if len(study.get_trials(states=(TrialState.COMPLETE,))) == 2 and not meanwhile:
            other = ask(study)
            study.tell(other, [0.5, 1.0])
            meanwhile.append(other.number)
        return ask(study)

    monkeypatch.setattr(controller_module, "ask", another_worker_goes_first)
    config, evaluator = make_config(tmp_path, trials=3), FakeEvaluator()
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    controller = Controller(study=study, space=get_space("mobilenet_v1", (28, 28, 1), 10), evaluator=evaluator,
                            latency_model=FakeLatency(), objective=Objective(config.objective), trials=3,
                            progress=False, log=lambda line: None)
    summary = controller.run()
    assert summary.completed == 3 and summary.withdrawn == 1 and len(evaluator.calls) == 2
    withdrawn = study.get_trials(states=(TrialState.PRUNED,))
    assert [t.number for t in withdrawn] == [meanwhile[0] + 1] and not withdrawn[0].params
    assert "filled the budget" in withdrawn[0].user_attrs["reason"]


# ---- interrupted work: a run that fails before its study exists leaves no folder


def test_a_run_that_fails_before_its_study_exists_leaves_no_empty_folder(tmp_path):
    from nas.experiment import run_experiment

    class Unpriceable(FakeLatency):
        def predict(self, ops):
            raise ValueError("this table cannot price the space")

    config = make_config(tmp_path / "new" / "deeper")
    with pytest.raises(ValueError, match="cannot price"):
        run_experiment(config, progress=False, evaluator=FakeEvaluator(), latency_model=Unpriceable(),
                       log=lambda line: None)
    assert not (tmp_path / "new").exists()  # the run folder and the parent it created are gone
    (tmp_path / "kept").mkdir()
    with pytest.raises(ValueError, match="cannot price"):
        run_experiment(make_config(tmp_path / "kept"), progress=False, evaluator=FakeEvaluator(),
                       latency_model=Unpriceable(), log=lambda line: None)
    assert (tmp_path / "kept").is_dir() and not (tmp_path / "kept" / "run").exists()  # what existed stays


# ---- progress: a run limited by time shows the time limit's time left


def test_time_left_is_the_time_limits_unless_the_trials_finish_first():
    from nas.search.controller import format_seconds, time_left

    # 11-minute limit, 2 of 60 trials done in 44 s: extrapolating the trials says 21 minutes
    assert time_left(44, 660, 2, 58) == 616
    assert time_left(44, 660, 2, 1) == 22  # the last trial ends sooner than the limit
    assert time_left(10, 660, 0, 58) == 650 and time_left(700, 660, 5, None) == 0
    assert format_seconds(616) == "10:16" and format_seconds(3725) == "1:02:05"


# ---- bad files and a search that cannot succeed


def test_config_files_that_are_folders_nested_too_deeply_or_give_a_key_twice_are_refused(tmp_path):
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path / "folder.yaml")
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(deep)
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: a\nspace: hybrid\nlatency: t.csv\ntrials: 3\ntrials: 300\n")
    with pytest.raises(ConfigError, match="duplicate key 'trials'"):
        load_config(twice)


def test_reading_a_run_without_its_database_creates_nothing(tmp_path):
    from nas.report import ReportError, open_run

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("name: t\nstudy: t\n")
    with pytest.raises(ReportError, match="no study database"):
        open_run(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.yaml"]


def test_a_search_whose_every_training_fails_stops_and_says_why(tmp_path):
    from nas.search.controller import MAX_CONSECUTIVE_FAILED_EVALUATIONS

    class AlwaysDiverges(FakeEvaluator):
        def evaluate(self, spec):
            self.calls.append(spec.arch_id)
            return {"accuracy": float("nan"), "status": "diverged", "reason": "loss became nan at step 1"}

    summary, evaluator, study = run(make_config(tmp_path, trials=50), evaluator=AlwaysDiverges())
    assert summary.gave_up and len(evaluator.calls) == MAX_CONSECUTIVE_FAILED_EVALUATIONS
    assert any("evaluations all failed" in note and "loss became nan" in note for note in summary.notes)


def test_a_report_on_a_full_disk_names_the_file(tmp_path):
    import errno

    from nas.folders import written_whole

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "trials.csv"
    with pytest.raises(OSError) as failed:
        with written_whole(target) as path:
            full(path)
    assert failed.value.errno == errno.ENOSPC and failed.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_a_trial_killed_before_its_first_heartbeat_does_not_block_a_resumed_run(tmp_path):
    from nas.search.study import make_storage

    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval_s=1, grace_period_s=2)
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    study.ask()  # a worker died right after asking: running, with no heartbeat, so never failed as stale
    config = make_config(tmp_path, trials=1)
    controller = Controller(study=study, space=get_space("mobilenet_v1", (28, 28, 1), 10), evaluator=FakeEvaluator(),
                            latency_model=FakeLatency(), objective=Objective(config.objective), trials=1,
                            progress=False, log=lambda line: None, storage=storage, grace_period_s=2)
    start = time.monotonic()
    summary = controller.run()
    assert summary.completed == 1 and time.monotonic() - start < 30
