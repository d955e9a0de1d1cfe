"""A search worker killed with SIGKILL at an exact point, then resumed: the study must end
with exactly the requested number of completed trials, all of distinct architectures, with
no trial lost (the killed trial is failed and its architecture completed by a retry) and
none counted twice.

The kill points (see :mod:`tests.kill_points` for how the worker is stopped there):

- during a trial: inside the evaluation of the worker's 3rd trial;
- during the study's write: inside the database transaction that records the 3rd trial's
  result, after the statements that set it COMPLETE and insert its values, before the
  commit. A database write cannot be cut halfway through a statement, so this is the last
  moment at which a kill can leave a result half-recorded; the rolled-back transaction must
  leave the trial exactly as it was (RUNNING, no values, no score), and the dead worker's
  trial is then failed and retried like any other;
- during report writing: the report written at the end of ``nas search``, stopped after
  half of ``trials.csv`` is on disk. No report file left under its final name may be
  partial: each is either absent or whole.

A dead worker's trial is noticed by its missing heartbeats once ``grace_period_s`` has
passed. The resumed worker starts after that (a user re-running the command later), except
in :func:`test_resumed_at_once_still_ends_with_exactly_the_requested_trials`, which resumes
while the dead trial still looks alive.
"""

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from nas.config import parse_config
from nas.experiment import run_experiment
from nas.report import open_run
from nas.search.study import make_storage
from tests.fakes import FakeEvaluator, FakeLatency

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TRIALS = 5
KILLED_TRIAL = 3  # the worker's 3rd evaluation
HEARTBEAT_S, GRACE_S = 1, 2
REPORT_FILES = ("trials.csv", "pareto.csv", "pareto.png", "hypervolume.png", "report.html")


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request, tmp_path) -> str:
    """The storage URL: an SQLite file beside the run folder, or the PostgreSQL test server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return request.getfixturevalue("postgres_url")


def make_config(tmp_path, storage_url: str, grace_s: int = GRACE_S) -> dict:
    return {"name": "kill", "space": "mobilenet_v1", "latency": "unused.csv", "trials": TRIALS, "seed": 0,
            "output": str(tmp_path / "run"), "storage": storage_url, "study": f"kill-{uuid.uuid4().hex[:8]}",
            "sampler": {"kind": "random"}, "heartbeat_interval_s": HEARTBEAT_S, "grace_period_s": grace_s}


def start_worker(config: dict, log: Path, kill_at: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NAS_TEST_KILL_AT", None)
    if kill_at:
        env.update(NAS_TEST_KILL_AT=kill_at, NAS_TEST_KILL_MARKER=str(log.with_name("stopped.json")))
    return subprocess.Popen([sys.executable, "-m", "tests.distributed_worker", json.dumps(config), "0", "0",
                             str(log)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when_stopped(worker: subprocess.Popen, log: Path, timeout: float = 60) -> dict:
    """SIGKILL the worker once it has stopped at its kill point; returns where it stopped."""
    marker = log.with_name("stopped.json")
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if worker.poll() is not None:
            raise AssertionError(f"the worker ended before its kill point:\n{worker.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            worker.kill()
            raise AssertionError("the worker did not reach its kill point")
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    worker.stdout.close()
    worker.stderr.close()
    return json.loads(marker.read_text())


def resume(config: dict, log: Path) -> None:
    """Run the killed worker's experiment again, as a user re-running the command would (in
    this process: a new interpreter would only add its start-up time to the test)."""
    run_experiment(parse_config(config), progress=False, worker=0, log=lambda line: None,
                   evaluator=FakeEvaluator(log_path=log), latency_model=FakeLatency())


def load(config: dict) -> optuna.Study:
    return optuna.load_study(study_name=config["study"], storage=make_storage(config["storage"]))


def evaluations(log: Path) -> collections.Counter:
    """How often each architecture was evaluated, by any worker."""
    return collections.Counter(line.split()[1] for line in log.read_text().splitlines())


def trials_of(study: optuna.Study, arch_id: str) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if t.user_attrs.get("arch_id") == arch_id]


def check_final_study(study: optuna.Study, log: Path, killed_arch: str | None) -> None:
    """Exactly TRIALS completed trials of distinct architectures; nothing left running or
    queued; the killed trial failed once and its architecture completed once; every
    architecture evaluated once (the killed one twice: by the dead worker and the retry)."""
    trials = study.get_trials()
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    arch_ids = [t.user_attrs["arch_id"] for t in completed]
    assert len(completed) == TRIALS, f"{len(completed)} completed trials, {TRIALS} requested"
    repeated = {a: n for a, n in collections.Counter(arch_ids).items() if n > 1}
    assert not repeated, f"completed trials repeat architectures: {repeated}"
    unfinished = [(t.number, t.state.name) for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert not unfinished, f"trials left unfinished: {unfinished}"
    counts = evaluations(log)
    if killed_arch is not None:
        killed = trials_of(study, killed_arch)
        assert [t.state for t in killed].count(TrialState.FAIL) == 1, "the killed trial must be marked failed"
        assert killed_arch in arch_ids, "the killed trial's architecture was never completed (lost)"
        retry = next(t for t in completed if t.user_attrs["arch_id"] == killed_arch)
        assert retry.params == next(t for t in killed if t.state == TrialState.FAIL).params
        assert counts.pop(killed_arch) == 2, "the killed architecture is evaluated by the dead worker and once more"
    twice = {a: n for a, n in counts.items() if n != 1}
    assert not twice, f"architectures evaluated more than once: {twice}"


def check_report_matches(folder: Path, study: optuna.Study) -> None:
    table = pd.read_csv(folder / "trials.csv")
    ordered = sorted(study.get_trials(), key=lambda t: t.number)
    assert list(table["number"]) == [t.number for t in ordered]
    assert list(table["state"]) == [t.state.name for t in ordered]


def check_no_partial_report(folder: Path, study: optuna.Study) -> None:
    """Every report file under its final name is whole (absent is fine: never trusted)."""
    if (folder / "trials.csv").exists():
        check_report_matches(folder, study)
    if (folder / "pareto.csv").exists():
        assert list(pd.read_csv(folder / "pareto.csv").columns)[:2] == ["number", "score"]
    for png in ("pareto.png", "hypervolume.png"):
        if (folder / png).exists():
            assert (folder / png).read_bytes().endswith(b"IEND\xaeB`\x82"), f"{png} is truncated"
    if (folder / "report.html").exists():
        assert (folder / "report.html").read_text().endswith("</html>"), "report.html is truncated"


@pytest.mark.parametrize("point", ["evaluation", "write"])
def test_worker_killed_during_a_trial_or_its_write_loses_and_repeats_nothing(tmp_path, storage, point):
    config = make_config(tmp_path, storage)
    log = tmp_path / "evaluations.log"
    stopped = kill_when_stopped(start_worker(config, log, kill_at=f"{point}:{KILLED_TRIAL}"), log)
    killed_at = time.monotonic()

    study = load(config)
    [killed] = trials_of(study, stopped["arch_id"])
    # The killed trial is still RUNNING with no values: its result never counted. (Optuna's own
    # storages take a trial's attributes before its tell, so a kill between them may leave the
    # attributes; only the values and state, written together by the tell, make a result.)
    assert killed.state == TrialState.RUNNING and killed.values is None
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == KILLED_TRIAL - 1

    time.sleep(max(0.0, killed_at + GRACE_S + HEARTBEAT_S - time.monotonic()))  # the dead trial is stale now
    resume(config, log)
    study = load(config)
    check_final_study(study, log, killed_arch=stopped["arch_id"])
    check_report_matches(Path(config["output"]), study)
    # the killed attempt, failed now, is on no front: not the study's, not the report's
    assert study.get_trials()[killed.number].state == TrialState.FAIL
    assert killed.number not in {t.number for t in study.best_trials}
    assert killed.number not in set(pd.read_csv(Path(config["output"]) / "pareto.csv")["number"])


def test_worker_killed_while_writing_the_report_leaves_no_partial_report(tmp_path, storage):
    config = make_config(tmp_path, storage)
    log = tmp_path / "evaluations.log"
    stopped = kill_when_stopped(start_worker(config, log, kill_at="report:trials.csv"), log)
    folder = Path(config["output"])
    assert Path(stopped["path"]).parent == folder

    study = load(config)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == TRIALS  # the search itself had ended
    check_no_partial_report(folder, study)

    resume(config, log)  # the budget is reached: the resumed run only writes the report
    study = load(config)
    check_final_study(study, log, killed_arch=None)
    assert all((folder / name).is_file() for name in REPORT_FILES)  # the whole report, written again
    check_report_matches(folder, study)
    check_no_partial_report(folder, study)
    assert open_run(folder, storage=config["storage"]).study_name == config["study"]  # later commands find it


def test_journal_worker_killed_during_a_trial_loses_and_repeats_nothing(tmp_path):
    """The journal storage (a file shared by workers) has no heartbeats in Optuna: the killed
    trial must still be failed and retried when the run is resumed."""
    config = make_config(tmp_path, f"journal:{tmp_path / 'study.journal'}")
    log = tmp_path / "evaluations.log"
    stopped = kill_when_stopped(start_worker(config, log, kill_at=f"evaluation:{KILLED_TRIAL}"), log)
    time.sleep(GRACE_S + HEARTBEAT_S)
    resume(config, log)
    check_final_study(load(config), log, killed_arch=stopped["arch_id"])


def test_resumed_at_once_still_ends_with_exactly_the_requested_trials(tmp_path):
    """Resumed while the killed trial still looks alive (its grace period has not passed):
    the resumed worker must not fill the budget with new trials and then add the dead
    trial's retry on top of it."""
    config = make_config(tmp_path, f"sqlite:///{tmp_path / 'study.db'}", grace_s=4)
    log = tmp_path / "evaluations.log"
    stopped = kill_when_stopped(start_worker(config, log, kill_at=f"evaluation:{KILLED_TRIAL}"), log)
    resume(config, log)
    check_final_study(load(config), log, killed_arch=stopped["arch_id"])
