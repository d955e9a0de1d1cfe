"""The storages make_storage opens are Optuna's own, configured through public arguments, and
the helpers around them (trial ids, fresh reads, heartbeats, warnings) use public API only."""

from __future__ import annotations

import subprocess
import sys
import warnings

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from nas.search.study import HEARTBEAT_ATTR, Heartbeat, ask, current_trial, make_storage, storage_trial_id


def new_study(storage) -> optuna.Study:
    return optuna.create_study(storage=storage, study_name="s", directions=["maximize"])


def test_relational_and_journal_storages_are_optunas_own(tmp_path):
    assert type(make_storage(f"sqlite:///{tmp_path / 'a.db'}")) is optuna.storages.RDBStorage
    assert type(make_storage(f"journal:{tmp_path / 'a.log'}")) is optuna.storages.JournalStorage
    assert type(make_storage("memory")) is optuna.storages.InMemoryStorage


def test_sqlite_files_use_the_write_ahead_log_with_normal_sync(tmp_path):
    storage = make_storage(f"sqlite:///{tmp_path / 'a.db'}")
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_postgres_sessions_commit_asynchronously_and_keep_the_urls_options(postgres_url):
    schema = "keep_options_test"
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    try:
        storage = make_storage(f"{postgres_url}?options=-csearch_path%3D{schema}")
        with storage.engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
            assert connection.exec_driver_sql("SHOW search_path").scalar() == schema
        storage.engine.dispose()
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "journal", "memory"])
def test_trial_ids_and_fresh_reads_come_from_public_storage_methods(tmp_path, kind):
    url = {"sqlite": f"sqlite:///{tmp_path / 'a.db'}", "journal": f"journal:{tmp_path / 'a.log'}",
           "memory": "memory"}[kind]
    storage = make_storage(url)
    study = new_study(storage)
    study.tell(study.ask(), 1.0)
    trial = study.ask()
    trial_id = storage_trial_id(storage, study, trial.number)
    assert storage.get_trial(trial_id).number == trial.number
    assert current_trial(study, trial.number, storage).state == TrialState.RUNNING
    storage.set_trial_state_values(trial_id, TrialState.FAIL)  # as another worker's stale check does
    assert current_trial(study, trial.number, storage).state == TrialState.FAIL
    assert current_trial(study, trial.number).state == TrialState.FAIL  # without the storage: a study read


def test_first_heartbeat_goes_to_the_asked_trial(tmp_path):
    storage = make_storage(f"journal:{tmp_path / 'a.log'}")
    study = new_study(storage)
    study.tell(study.ask(), 1.0)
    trial = study.ask()
    heartbeat = Heartbeat(storage, interval_s=60, grace_period_s=120)
    trial_id = heartbeat.first(study, trial.number)
    assert trial_id == storage_trial_id(storage, study, trial.number)
    beats = [t.system_attrs.get(HEARTBEAT_ATTR) for t in study.get_trials()]
    assert beats[0] is None and beats[1] is not None  # the running trial, not the finished one
    assert Heartbeat(make_storage("memory")).first(study, trial.number) is None  # no heartbeats there


def test_asking_on_a_storage_with_heartbeats_does_not_warn(tmp_path):
    study = new_study(make_storage(f"sqlite:///{tmp_path / 'a.db'}"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ask(study)
    with pytest.warns(UserWarning, match="Heartbeat of storage"):  # as Optuna warns outside ask()
        study.ask()


def test_importing_the_storage_module_changes_no_warning_filter():
    # after the package and the libraries the module imports (some set filters of their own)
    code = ("import warnings, optuna, sqlalchemy, nas; before = list(warnings.filters); import nas.search.study; "
            "assert warnings.filters == before, warnings.filters[:3]")
    subprocess.run([sys.executable, "-c", code], check=True)
