"""The dataset section's augmentation and image-folder keys: defaults by dataset, validation, the
training budget a search and `nas verify` use, and the study identity that keeps scores with and
without augmentation apart. One search trains for real on a tiny image folder."""

from __future__ import annotations

import pytest

from nas.config import ConfigError, parse_config
from nas.experiment import run_experiment
from nas.export.retrain import retrain_budget
from nas.search.runner import ExperimentError, make_experiment_evaluator
from nas.train import Budget
from nas.verify import verify_run
from tests.fakes import FakeLatency
from tests.test_data_folder import image_folder
from tests.test_verify import FakeTrainer


def config_with(dataset, tmp_path=None, **changes):
    data = {"name": "t", "space": "mobilenet_v1", "latency": "unused.csv", "trials": 2, "dataset": dataset,
            "output": str(tmp_path / "run") if tmp_path else "runs/t", **changes}
    return parse_config(data)


FOLDER = {"name": "folder", "path": "imgs", "input": "8x8x3"}


@pytest.mark.parametrize("dataset, augmented", [
    ({"name": "cifar10"}, True), ({"name": "cifar100"}, True), (FOLDER, True),
    ({"name": "fashion-mnist"}, False), ({"name": "mnist"}, False), ({"name": "idx"}, False),
    ({"name": "synthetic"}, False),
    ({"name": "cifar10", "augment": False}, False), ({"name": "fashion-mnist", "augment": True}, True),
])
def test_augmentation_defaults_by_dataset(dataset, augmented):
    config = config_with(dataset)
    assert config.dataset.augments is augmented
    assert config.dataset.augmentation() == {"crop_padding": 4 if augmented else 0, "flip": augmented}
    budget = make_experiment_evaluator(config).budget
    assert (budget.crop_padding, budget.flip) == ((4, True) if augmented else (0, False))


def test_digits_and_clothing_keep_their_budget_key():
    """Runs made before dataset.augment existed resume: their budget (and so their study's
    identity) is unchanged."""
    budget = make_experiment_evaluator(config_with({"name": "fashion-mnist"})).budget
    assert budget.key == Budget(seed=0).key


def test_evaluator_options_still_set_augmentation_when_the_dataset_does_not():
    config = config_with({"name": "cifar10"}, evaluator={"kind": "train", "options": {"crop_padding": 2}})
    budget = make_experiment_evaluator(config).budget
    assert (budget.crop_padding, budget.flip) == (2, True)
    config = config_with({"name": "fashion-mnist"}, evaluator={"kind": "train", "options": {"flip": True}})
    assert make_experiment_evaluator(config).budget.flip is True


@pytest.mark.parametrize("dataset, changes, message", [
    ({"name": "cifar10", "augment": "yes"}, {}, "dataset.augment must be true or false"),
    ({"name": "cifar10", "augment": False}, {"evaluator": {"kind": "train", "options": {"flip": True}}},
     "dataset.augment and evaluator.options.flip both set the augmentation"),
    ({"name": "folder", "input": "8x8x3"}, {}, "dataset.path is required for the folder dataset"),
    ({"name": "folder", "path": "imgs"}, {}, "dataset.input is required for the folder dataset"),
    ({**FOLDER, "input": "8x8x4"}, {}, "dataset.input must have 1 \\(grey\\) or 3 \\(RGB\\) channels, got '8x8x4'"),
    ({**FOLDER, "input": "8by8"}, {}, "dataset.input must look like HxWxC"),
    ({"name": "cifar10", "input": "32x32x3"}, {}, "dataset.input applies to the folder dataset only"),
    ({"name": "mnist", "cache": "c"}, {}, "dataset.cache applies to the folder dataset only"),
])
def test_bad_dataset_sections_are_refused(dataset, changes, message):
    with pytest.raises(ConfigError, match=message):
        config_with(dataset, **changes)


def test_verify_and_export_retrain_with_the_runs_augmentation():
    on = retrain_budget(config_with({"name": "cifar100"}), 3)
    assert (on.crop_padding, on.flip, on.epochs) == (4, True, 3)
    off = retrain_budget(config_with({"name": "cifar10", "augment": False}), 3)
    assert (off.crop_padding, off.flip) == (0, False)
    proxy = retrain_budget(config_with({"name": "cifar10"}, evaluator={"kind": "proxy"}), 3)
    assert (proxy.crop_padding, proxy.flip) == (4, True)
    assert retrain_budget(config_with({"name": "fashion-mnist"}), 3).key == Budget(epochs=3, seed=0).key


def test_folder_search_caches_in_the_run_folder_refuses_mixed_augmentation_and_verifies(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=4)
    dataset = {"name": "folder", "path": str(root), "input": "8x8x3"}
    options = {"fraction": 0.5, "batch_size": 4, "threads": 1}
    config = config_with(dataset, tmp_path, evaluator={"kind": "train", "options": options},
                         sampler={"kind": "random"}, baselines=["mobilenet_v1_0.25"], trials=1)
    evaluator = make_experiment_evaluator(config)
    assert evaluator.input_shape == (8, 8, 3) and evaluator.classes == 3
    assert "folder@" in evaluator.budget_key and ":8x8x3:" in evaluator.budget_key
    summary = run_experiment(config, progress=False, latency_model=FakeLatency((8, 8, 3)), log=lambda line: None)
    assert summary.study is not None
    run = config.output_dir()
    assert len(list((run / "data_cache").glob("folder-*.npz"))) == 1
    assert sorted(p.name for p in root.rglob("*") if p.suffix == ".npz") == []  # nothing written beside the images

    without = config_with({**dataset, "augment": False}, tmp_path, evaluator={"kind": "train", "options": options},
                          sampler={"kind": "random"}, baselines=["mobilenet_v1_0.25"], trials=1)
    with pytest.raises(ExperimentError, match=r"another setup(.|\n)*evaluator: .*crop_padding=4,flip=True.*"
                                              r"crop_padding=0,flip=False"):
        run_experiment(without, progress=False, latency_model=FakeLatency((8, 8, 3)), log=lambda line: None)

    budgets = []

    def trainer(spec, data, budget, on_epoch=None):
        budgets.append(budget)
        assert data.input_shape == (8, 8, 3) and data.class_names == ("cat", "dog", "emu")
        return FakeTrainer()(spec, data, budget, on_epoch)

    verify_run(run, picks=1, epochs=1, seeds=1, progress=False, trainer=trainer, report=False, log=lambda line: None)
    assert budgets and all(b.crop_padding == 4 and b.flip for b in budgets)
    assert len(list((run / "data_cache").glob("folder-*.npz"))) == 1  # verify read the run's cache
