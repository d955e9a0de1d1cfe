"""The batched RDB storage: a trial's parameters and attributes written in one transaction,
read back exactly as plain Optuna writes them, and nothing written when the block fails; this
worker's trials read from memory exactly as the database holds them."""

from __future__ import annotations

import time
import uuid

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from nas.search import batched_storage
from nas.search.batched_storage import BatchedRDBStorage, batching_supported
from nas.search.study import make_storage, write_batch

CHOICES = {f"p{i}": [1, 2, 3] for i in range(6)}


def fill(trial, storage):
    with write_batch(storage):
        params = {name: trial.suggest_categorical(name, choices) for name, choices in CHOICES.items()}
        trial.set_user_attr("arch_id", "abc")
        trial.set_user_attr("spec", {"blocks": [1, 2]})
        trial.set_user_attr("arch_id", "abd")  # the last write of a key wins, as without a batch
        trial.set_constraint("latency", -0.5)
    return params


def open_study(tmp_path, url=None):
    storage = make_storage(url or f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name=f"batched-{uuid.uuid4().hex[:8]}",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    return storage, study


def database(url):
    """A plain Optuna reader of the same database: what every other worker sees."""
    return optuna.storages.RDBStorage(url)


def test_the_installed_optuna_supports_batching():
    # Without its helpers every write would go one by one: correct, but the controller's
    # overhead per trial would be several times higher. Fail loudly when Optuna changes.
    assert batching_supported()


def test_sqlite_storage_is_batched(tmp_path):
    storage, _ = open_study(tmp_path)
    assert isinstance(storage, BatchedRDBStorage)


def test_batched_writes_read_back_like_plain_optuna(tmp_path, rdb_url):
    storage, study = open_study(tmp_path, rdb_url)
    for _ in range(3):  # the first trial takes Optuna's own path for new names; later ones the bulk path
        trial = study.ask()
        params = fill(trial, storage)
        study.tell(trial, 1.0)
    reopened = optuna.load_study(study_name=study.study_name, storage=rdb_url)  # plain Optuna reads it
    trials = reopened.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    last = trials[-1]
    assert last.params == params
    assert last.distributions == {name: CategoricalDistribution(c) for name, c in CHOICES.items()}
    assert last.user_attrs == {"arch_id": "abd", "spec": {"blocks": [1, 2]}}
    assert last.system_attrs["constraints:latency"] == -0.5


def test_nothing_is_written_while_the_batch_is_open(tmp_path):
    storage, study = open_study(tmp_path)
    others = database(f"sqlite:///{tmp_path / 'study.db'}")
    trial = study.ask()
    with write_batch(storage):
        trial.suggest_categorical("p0", [1, 2, 3])
        trial.set_user_attr("arch_id", "x")
        seen = others.get_trial(trial._trial_id)
        assert seen.params == {} and seen.user_attrs == {}
        mine = storage.get_trial(trial._trial_id)  # the writer reads its own writes
        assert set(mine.params) == {"p0"} and mine.user_attrs == {"arch_id": "x"}
    seen = others.get_trial(trial._trial_id)
    assert set(seen.params) == {"p0"} and seen.user_attrs == {"arch_id": "x"}


def test_a_failing_block_writes_nothing(tmp_path):
    storage, study = open_study(tmp_path)
    trial = study.ask()
    with pytest.raises(KeyError):
        with write_batch(storage):
            trial.suggest_categorical("p0", [1, 2, 3])
            trial.set_user_attr("arch_id", "x")
            raise KeyError("evaluation broke")
    for reader in (storage, database(f"sqlite:///{tmp_path / 'study.db'}")):
        seen = reader.get_trial(trial._trial_id)
        assert seen.params == {} and seen.user_attrs == {}
    study.tell(trial, state=TrialState.FAIL)  # the caller can still fail the trial


def test_an_incompatible_distribution_is_still_refused(tmp_path):
    storage, study = open_study(tmp_path)
    first = study.ask()
    fill(first, storage)
    study.tell(first, 1.0)
    second = study.ask()
    with pytest.raises(ValueError):
        with write_batch(storage):
            second.suggest_categorical("p0", ["a", "b"])  # p0 had choices 1, 2, 3


def test_equal_choices_of_other_types_are_stored_as_given(tmp_path):
    # (1, 2) == (1.0, 2.0) in Python, and the distributions' JSON is kept between trials: the
    # stored distributions must still tell them apart
    storage, study = open_study(tmp_path)
    for _ in range(3):  # the first trial takes Optuna's own path for new names; later ones the bulk path
        trial = study.ask()
        with write_batch(storage):
            trial.suggest_categorical("ints", (1, 2))
            trial.suggest_categorical("floats", (1.0, 2.0))
        study.tell(trial, 1.0)
    for trial in database(f"sqlite:///{tmp_path / 'study.db'}").get_all_trials(study._study_id):
        assert [type(c) for c in trial.distributions["ints"].choices] == [int, int]
        assert [type(c) for c in trial.distributions["floats"].choices] == [float, float]


def test_a_finished_trial_cannot_be_changed_through_a_batch(tmp_path):
    storage, study = open_study(tmp_path)
    trial = study.ask()
    fill(trial, storage)
    study.tell(trial, 1.0)
    with pytest.raises(RuntimeError):
        with write_batch(storage):
            storage.set_trial_user_attr(trial._trial_id, "late", 1)


def test_storages_without_batching_write_directly():
    storage = make_storage("memory")
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    with write_batch(storage):
        trial.suggest_categorical("p0", [1, 2])
        assert set(storage.get_trial(trial._trial_id).params) == {"p0"}


def test_a_nested_block_joins_the_outer_one(tmp_path):
    storage, study = open_study(tmp_path)
    trial = study.ask()
    others = database(f"sqlite:///{tmp_path / 'study.db'}")
    with write_batch(storage):
        with write_batch(storage):
            trial.set_user_attr("inner", 1)
        assert others.get_trial(trial._trial_id).user_attrs == {}  # not yet: the outer block is open
        trial.set_user_attr("outer", 2)
    assert others.get_trial(trial._trial_id).user_attrs == {"inner": 1, "outer": 2}


# ---- this worker's trials, read from memory


def run_mixed_trials(storage, study):
    """Trials in every state a search leaves, some with attributes set after the batch."""
    study.enqueue_trial({"p0": 2}, user_attrs={"baseline": "queued"})
    for i, outcome in enumerate([1.0, TrialState.FAIL, 0.5, TrialState.PRUNED, (2.0,)]):
        trial = study.ask()
        fill(trial, storage)
        trial.set_user_attr("late", [i, (i, "tuple")])  # outside a batch; a tuple reads back as a list
        if isinstance(outcome, TrialState):
            study.tell(trial, state=outcome)
        else:
            study.tell(trial, outcome)
    trial = study.ask()
    fill(trial, storage)
    with write_batch(storage):  # the attributes and the end in one transaction
        trial.set_user_attr("score", 0.5)
        study.tell(trial, float("inf"))
    study.enqueue_trial({"p0": 3})
    trial = study.ask()  # queued, so not held in memory: Optuna writes its end, after the batch's rows
    with write_batch(storage):
        trial.set_user_attr("duplicate_of", 0)
        study.tell(trial, 0.75)
    trial = study.ask()
    trial.report(0.25, step=3)  # intermediate values are not copied: read back from the database
    study.tell(trial, state=TrialState.PRUNED)
    return study.ask()  # left running


def assert_reads_match_the_database(storage, study, reader):
    mine = study.get_trials(deepcopy=False)
    theirs = reader.get_all_trials(reader.get_study_id_from_name(study.study_name))
    assert mine == theirs
    for trial in theirs:
        assert storage.get_trial(trial._trial_id) == trial


def test_this_workers_trials_read_from_memory_equal_the_database(tmp_path, rdb_url):
    storage, study = open_study(tmp_path, rdb_url)
    running = run_mixed_trials(storage, study)
    fill(running, storage)
    assert_reads_match_the_database(storage, study, database(rdb_url))
    study.tell(running, 3.0)
    assert_reads_match_the_database(storage, study, database(rdb_url))
    queued = [t for t in study.get_trials() if "duplicate_of" in t.user_attrs]
    assert len(queued) == 1 and queued[0].values == [0.75]


def test_other_workers_trials_are_read_from_the_database(tmp_path, rdb_url):
    storage, study = open_study(tmp_path, rdb_url)
    other = optuna.load_study(study_name=study.study_name, storage=make_storage(rdb_url))
    mine = study.ask()
    fill(mine, storage)
    theirs = other.ask()
    theirs.set_user_attr("worker", "other")
    assert [t.number for t in study.get_trials()] == [0, 1]
    other.tell(theirs, 0.25)
    study.tell(mine, 0.75)
    assert_reads_match_the_database(storage, study, database(rdb_url))
    assert study.get_trials()[1].user_attrs == {"worker": "other"}


def failed_by_another_worker(tmp_path):
    """A trial of ours that another worker's dead-worker check has failed meanwhile."""
    storage, study = open_study(tmp_path)
    trial = study.ask()
    fill(trial, storage)
    database(f"sqlite:///{tmp_path / 'study.db'}").set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return storage, study, trial


def test_a_trial_failed_by_another_worker_is_read_as_failed(tmp_path):
    storage, study, trial = failed_by_another_worker(tmp_path)
    assert study.get_trials()[0].state == TrialState.FAIL
    assert storage.get_trial(trial._trial_id).state == TrialState.FAIL
    with pytest.raises(ValueError, match="Cannot tell a FAIL trial"):  # as plain Optuna says
        study.tell(trial, 1.0)


def test_a_trial_failed_by_another_worker_cannot_be_completed(tmp_path):
    storage, study, trial = failed_by_another_worker(tmp_path)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # the database refuses it
        study.tell(trial, 1.0)
    assert database(f"sqlite:///{tmp_path / 'study.db'}").get_trial(trial._trial_id).state == TrialState.FAIL
    assert storage.get_trial(trial._trial_id).state == TrialState.FAIL


def test_heartbeats_are_recorded_and_renewed(rdb_url):
    storage = make_storage(rdb_url, heartbeat_interval_s=1, grace_period_s=1)
    study = optuna.create_study(storage=storage, study_name=f"beats-{uuid.uuid4().hex[:8]}")
    trial = study.ask()
    others = optuna.storages.RDBStorage(rdb_url, heartbeat_interval=1, grace_period=1)  # plain Optuna judges
    assert others._get_stale_trial_ids(study._study_id) == []  # no beat yet: never stale
    storage.record_heartbeat(trial._trial_id)
    time.sleep(2.2)  # past the grace period (SQLite's clock counts whole seconds)
    assert others._get_stale_trial_ids(study._study_id) == [trial._trial_id]
    storage.record_heartbeat(trial._trial_id)
    assert others._get_stale_trial_ids(study._study_id) == []


def test_study_reads_like_plain_optuna_and_missing_studies_are_refused(tmp_path):
    storage, study = open_study(tmp_path)
    assert storage.get_study_system_attrs(study._study_id) == {}
    storage.set_study_system_attr(study._study_id, "generation_cache", {"trials": [1, 2], "n": 3})
    plain = database(f"sqlite:///{tmp_path / 'study.db'}").get_study_system_attrs(study._study_id)
    assert storage.get_study_system_attrs(study._study_id) == plain == {"generation_cache": {"trials": [1, 2], "n": 3}}
    with pytest.raises(KeyError):
        storage.get_study_system_attrs(study._study_id + 1)
    with pytest.raises(KeyError):
        storage.get_all_trials(study._study_id + 1)


def test_reads_past_the_id_list_limit_match_the_database(tmp_path, monkeypatch):
    # Many unfinished trials of other workers: their ids are filtered in Python, and a large
    # load goes through Optuna's own query.
    monkeypatch.setattr(batched_storage, "MAX_IN_LIST", 2)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage, study = open_study(tmp_path)
    other = optuna.load_study(study_name=study.study_name, storage=make_storage(url))
    others_running = [other.ask() for _ in range(3)]
    for _ in range(2):
        other.tell(other.ask(), 0.1)
    mine = study.ask()
    fill(mine, storage)
    assert_reads_match_the_database(storage, study, database(url))
    other.tell(others_running[0], 0.2)
    study.tell(mine, 0.3)
    assert_reads_match_the_database(storage, study, database(url))
    assert len(study.get_trials(states=(TrialState.RUNNING,))) == 2
