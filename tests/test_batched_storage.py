"""The batched RDB storage: a trial's parameters and attributes written in one transaction,
read back exactly as plain Optuna writes them, and nothing written when the block fails."""

from __future__ import annotations

import uuid

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

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


def test_the_installed_optuna_supports_batching():
    # Without its helpers every write would go one by one: correct, but the controller's
    # overhead per trial would be several times higher. Fail loudly when Optuna changes.
    assert batching_supported()


def test_sqlite_storage_is_batched(tmp_path):
    storage, _ = open_study(tmp_path)
    assert isinstance(storage, BatchedRDBStorage)


def check_read_back(storage, study, url):
    for _ in range(3):  # the first trial takes Optuna's own path for new names; later ones the bulk path
        trial = study.ask()
        params = fill(trial, storage)
        study.tell(trial, 1.0)
    reopened = optuna.load_study(study_name=study.study_name, storage=url)  # plain Optuna reads it
    trials = reopened.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    last = trials[-1]
    assert last.params == params
    assert last.distributions == {name: CategoricalDistribution(c) for name, c in CHOICES.items()}
    assert last.user_attrs == {"arch_id": "abd", "spec": {"blocks": [1, 2]}}
    assert last.system_attrs["constraints:latency"] == -0.5


def test_batched_writes_read_back_like_plain_optuna(tmp_path):
    storage, study = open_study(tmp_path)
    check_read_back(storage, study, f"sqlite:///{tmp_path / 'study.db'}")


def test_batched_writes_on_postgres(tmp_path, postgres_url):
    storage, study = open_study(tmp_path, postgres_url)
    check_read_back(storage, study, postgres_url)


def test_nothing_is_written_while_the_batch_is_open(tmp_path):
    storage, study = open_study(tmp_path)
    trial = study.ask()
    with write_batch(storage):
        trial.suggest_categorical("p0", [1, 2, 3])
        trial.set_user_attr("arch_id", "x")
        seen = storage.get_trial(trial._trial_id)
        assert seen.params == {} and seen.user_attrs == {}
    seen = storage.get_trial(trial._trial_id)
    assert set(seen.params) == {"p0"} and seen.user_attrs == {"arch_id": "x"}


def test_a_failing_block_writes_nothing(tmp_path):
    storage, study = open_study(tmp_path)
    trial = study.ask()
    with pytest.raises(KeyError):
        with write_batch(storage):
            trial.suggest_categorical("p0", [1, 2, 3])
            trial.set_user_attr("arch_id", "x")
            raise KeyError("evaluation broke")
    seen = storage.get_trial(trial._trial_id)
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
    with write_batch(storage):
        with write_batch(storage):
            trial.set_user_attr("inner", 1)
        assert storage.get_trial(trial._trial_id).user_attrs == {}  # not yet: the outer block is open
        trial.set_user_attr("outer", 2)
    assert storage.get_trial(trial._trial_id).user_attrs == {"inner": 1, "outer": 2}
