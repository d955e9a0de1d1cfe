"""The weights of an exported network: retrained from scratch on the whole training set of
the run's dataset (train and validation together) with the search's training settings, or
loaded from a state_dict. ``nas verify`` retrains the same way."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from nas.config import ExperimentConfig
from nas.data import Dataset, Split
from nas.export.selection import ExportError
from nas.spec import ArchSpec
from nas.train import Budget, build_network, train

DEFAULT_RETRAIN_EPOCHS = 10

__all__ = ["DEFAULT_RETRAIN_EPOCHS", "ExportError", "full_training_set", "load_run_dataset", "load_weights",
           "retrain", "retrain_budget"]


def load_run_dataset(config: ExperimentConfig, run_folder: str | Path | None = None) -> Dataset:
    """The dataset the run searched on (same name, folder, validation share and split seed; an
    image folder at the run's input shape, its decoded arrays kept in the run's cache when
    ``run_folder`` is given or the config names a cache).

    Raises:
        ExportError: the dataset cannot be read (the message says how to get it).
    """
    from nas.data import DataError, load_dataset

    data = config.dataset
    folder = {"input": data.input, "cache_dir": data.cache_dir(run_folder)} if data.name == "folder" else {}
    try:
        return load_dataset(data.name, data.path, val_fraction=data.val_fraction,
                            split_seed=config.evaluator.options.get("split_seed", 0), **folder)
    except (DataError, FileNotFoundError) as exc:
        raise ExportError(f"cannot load the run's dataset: {exc}") from None


def full_training_set(dataset: Dataset) -> Dataset:
    """``dataset`` whose train split is the whole training set (train + validation). The
    normalisation statistics stay those of the original train split."""
    merged = Split(torch.cat([dataset.train.images, dataset.val.images]),
                   torch.cat([dataset.train.labels, dataset.val.labels]))
    return dataclasses.replace(dataset, train=merged)


def retrain_budget(config: ExperimentConfig | None, epochs: int, seed: int | None = None) -> Budget:
    """The budget of a retraining run: the search's training settings (optimizer, batch size,
    learning rate, augmentation, ... from a ``train`` evaluator's options) with ``epochs``
    epochs on the whole training set and no time limit."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ExportError(f"retrain epochs must be a positive integer, got {epochs!r}")
    trains = config is not None and config.evaluator.kind == "train"
    options = dict(config.evaluator.options) if trains else {}
    known = {f.name for f in dataclasses.fields(Budget)} - {"epochs", "fraction", "max_seconds"}
    settings = {k: v for k, v in options.items() if k in known}
    if config is not None:  # the dataset's augmentation, unless the train options set it
        settings = {**config.dataset.augmentation(), **settings}
    settings["seed"] = seed if seed is not None else settings.get("seed", config.seed if config else 0)
    try:
        return Budget(**{**settings, "epochs": epochs, "fraction": 1.0})
    except ValueError as exc:
        raise ExportError(f"cannot retrain with the run's training settings: {exc}") from None


def retrain(spec: ArchSpec, dataset: Dataset, budget: Budget, progress: bool = True) -> tuple[nn.Module, dict]:
    """Train ``spec`` from scratch for ``budget`` on the whole training set of ``dataset``
    (tqdm bars when ``progress``); returns the model and a summary of the run.

    Raises:
        ExportError: training diverged.
    """
    result = train(spec, full_training_set(dataset), budget, progress=progress)
    if result.status == "diverged":
        raise ExportError(f"retraining diverged: {result.reason}; try fewer epochs or a lower learning rate")
    summary = {"epochs": result.epochs_done, "train_images": len(dataset.train) + len(dataset.val),
               "train_time_s": result.train_time_s, "train_loss": result.train_loss, "budget": budget.to_dict()}
    return result.model.float().to(memory_format=torch.contiguous_format), summary


def load_weights(spec: ArchSpec, path: str | Path) -> nn.Module:
    """The network of ``spec`` with the state_dict at ``path`` (read with weights_only=True).

    Raises:
        ExportError: the file is missing, not a state_dict, or does not fit the architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"weights file {str(path)!r} does not exist")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise ExportError(f"weights file {str(path)!r} is not a PyTorch state_dict: {exc}") from None
    if not isinstance(state, dict):
        raise ExportError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state_dict")
    model = build_network(spec)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:3])[:300]
        raise ExportError(f"weights file {str(path)!r} does not fit architecture {spec.arch_id}: "
                          f"{detail or exc}") from None
    return model.eval()
