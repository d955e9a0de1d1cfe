"""Several worker processes on one study; workers killed with SIGKILL mid-trial."""

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
import pytest

from nas.report import open_run, trials_frame, write_report
from nas.search.study import make_storage

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def worker_config(tmp_path, storage: str, study: str, trials: int) -> dict:
    return {"name": "dist", "space": "mobilenet_v1", "latency": "unused.csv", "trials": trials, "seed": 0,
            "output": str(tmp_path / "run"), "storage": storage, "study": study,
            "sampler": {"kind": "random"}, "heartbeat_interval_s": 1, "grace_period_s": 3}


def start_worker(config: dict, index: int, sleep_s: float, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.distributed_worker", json.dumps(config), str(index),
                             str(sleep_s), str(log)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def evaluations(log: Path) -> list[tuple[int, str]]:
    if not log.exists():
        return []
    return [(int(pid), arch) for pid, arch in (line.split() for line in log.read_text().splitlines())]


def kill_mid_trial(victim: subprocess.Popen, log: Path, after: int, timeout: float = 60) -> str:
    """SIGKILL ``victim`` right after it starts its ``after``-th evaluation; returns that arch_id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = [arch for pid, arch in evaluations(log) if pid == victim.pid]
        if len(mine) >= after:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            return mine[after - 1]
        time.sleep(0.02)
    raise AssertionError(f"worker {victim.pid} did not reach evaluation {after}")


def finish(process: subprocess.Popen, timeout: float = 120) -> None:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]


def check_killed_trial_retried(study: optuna.Study, killed_arch: str) -> None:
    trials = study.get_trials()
    killed = [t for t in trials if t.user_attrs.get("arch_id") == killed_arch and t.state.name == "FAIL"]
    assert len(killed) == 1, "the killed trial must be marked failed"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert retries and retries[0].state.name == "COMPLETE", "the killed trial must be retried to completion"
    assert retries[0].params == killed[0].params


def test_three_postgres_workers_survive_a_killed_worker(tmp_path, postgres_url):
    study_name = f"kill-{uuid.uuid4().hex[:8]}"
    config = worker_config(tmp_path, postgres_url, study_name, trials=18)
    log = tmp_path / "evaluations.log"
    workers = [start_worker(config, i, 0.4, log) for i in range(3)]
    killed_arch = kill_mid_trial(workers[0], log, after=2)
    for worker in workers[1:]:
        finish(worker)
    study = optuna.load_study(study_name=study_name, storage=make_storage(postgres_url))
    assert len([t for t in study.get_trials() if t.state.name == "COMPLETE"]) >= 18
    check_killed_trial_retried(study, killed_arch)
    counts = collections.Counter(arch for _, arch in evaluations(log))
    assert counts.pop(killed_arch) == 2  # evaluated by the killed worker and by the retry
    assert all(n == 1 for n in counts.values()), "an architecture was evaluated twice"
    assert len({pid for pid, _ in evaluations(log)}) == 3  # all three workers took part
    # the report made from the storage URL matches the storage
    folder = tmp_path / "report"
    write_report(open_run(storage=postgres_url, study=study_name), folder)
    import pandas as pd

    table = pd.read_csv(folder / "trials.csv")
    assert sorted(table["number"]) == [t.number for t in study.get_trials()]
    assert list(table["state"]) == [t.state.name for t in sorted(study.get_trials(), key=lambda t: t.number)]


def test_sqlite_worker_killed_and_resumed_loses_nothing(tmp_path):
    config = worker_config(tmp_path, f"sqlite:///{tmp_path / 'study.db'}", "single", trials=8)
    log = tmp_path / "evaluations.log"
    worker = start_worker(config, 0, 0.3, log)
    killed_arch = kill_mid_trial(worker, log, after=4)
    storage = make_storage(config["storage"])
    before = {t.number: t.values for t in optuna.load_study(study_name="single", storage=storage).get_trials()
              if t.state.name == "COMPLETE"}
    assert len(before) == 3
    finish(start_worker(config, 0, 0.3, log))
    study = optuna.load_study(study_name="single", storage=make_storage(config["storage"]))
    for number, values in before.items():
        assert study.trials[number].values == values
    assert len([t for t in study.get_trials() if t.state.name == "COMPLETE"]) >= 8
    check_killed_trial_retried(study, killed_arch)


def test_two_workers_share_a_journal_file(tmp_path):
    storage = f"journal:{tmp_path / 'study.journal'}"
    config = worker_config(tmp_path, storage, "journal", trials=10)
    log = tmp_path / "evaluations.log"
    workers = [start_worker(config, i, 0.05, log) for i in range(2)]
    for worker in workers:
        finish(worker)
    frame = trials_frame(open_run(storage=storage, study="journal"))
    assert (frame["state"] == "COMPLETE").sum() >= 10
    assert len({pid for pid, _ in evaluations(log)}) == 2


CREATE_TRIALS = """
import sys, optuna
from nas.search.study import make_storage
study = optuna.load_study(study_name=sys.argv[2], storage=make_storage(sys.argv[1]))
for _ in range(int(sys.argv[3])):
    study.tell(study.ask(), 1.0)
"""


def test_trials_created_at_once_get_distinct_numbers(rdb_url):
    name = f"numbers-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=make_storage(rdb_url))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen([sys.executable, "-c", CREATE_TRIALS, rdb_url, name, "25"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for worker in workers:
        finish(worker)
    trials = optuna.load_study(study_name=name, storage=optuna.storages.RDBStorage(rdb_url)).get_trials()
    assert sorted(t.number for t in trials) == list(range(75))
    assert [t.number for t in sorted(trials, key=lambda t: t._trial_id)] == list(range(75))  # in creation order
