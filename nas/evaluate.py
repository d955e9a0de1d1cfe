"""Evaluators: one interface that turns a spec into accuracy-like metrics.

Contract (what the search controller relies on)::

    evaluator = make_evaluator("train", epochs=1, fraction=0.2)   # or "proxy", "tiny"
    metrics = evaluator.evaluate(spec)        # dict of JSON-serialisable values
    metrics[evaluator.objective]              # the number to maximise
    evaluator.budget_key                      # stable string: what else the result depends on

Results are cached by ``(spec.arch_id, budget_key)``, in memory and optionally in a JSON-lines
file shared by runs (and by processes: lines appended by others are picked up on a miss),
so an architecture is never trained twice for the same budget. ``evaluate`` raises only for
misuse (a spec whose input shape or class count does not fit the dataset); a network that
diverges or runs out of time is a result with ``status`` set, not an exception.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from nas.data import DATASET_SHAPES, DATASETS, Dataset, load_dataset
from nas.ops import count_macs, count_params, resolve
from nas.proxies import PROXIES, compute_proxies
from nas.search.halving import RungSchedule, ScheduleError
from nas.spec import ArchSpec
from nas.train import (
    MAX_SEED,
    Budget,
    TrainResult,
    build_network,
    check_compatible,
    fit,
    torch_threads,
    train,
    training_slice,
)


class EvaluatorError(ValueError):
    """Bad evaluator kind or options; the message names the value and what was expected."""


# a proxy scores a network at initialisation on a few batches: more than this is a typo
MAX_PROXY_BATCH = 4_096
MAX_PROXY_BATCHES = 1_000


# --------------------------------------------------------------------------------------
# cache


class ResultCache:
    """Metrics by ``(arch_id, budget_key)``: in memory, and appended to ``path`` (JSON lines)
    when given. The file is read lazily on first use; a line that does not parse (say, a run
    killed mid-write) is skipped with a warning, never deleted."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else None
        self._memory: dict[tuple[str, str], dict] = {}
        self._offset = 0  # bytes of the file already read

    def _refresh(self) -> None:
        if self.path is None or not self.path.is_file() or self.path.stat().st_size <= self._offset:
            return
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]  # a last line without newline may be mid-write
        for number, line in enumerate(complete.decode("utf-8", "replace").splitlines(), 1):
            try:
                record = json.loads(line)
                key, metrics = (record["arch_id"], record["budget_key"]), record["metrics"]
                if not (all(isinstance(part, str) for part in key) and isinstance(metrics, dict)):
                    raise TypeError("arch_id and budget_key must be strings and metrics an object")
                if _damaged(metrics):
                    raise TypeError("a successful result with a non-finite number")
                self._memory[key] = metrics
            except (json.JSONDecodeError, KeyError, TypeError):
                warnings.warn(f"{self.path}: skipping an unreadable cache line (#{number} after byte "
                              f"{self._offset})", stacklevel=3)
        self._offset += len(complete)

    def _ends_mid_line(self) -> bool:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return False
        with self.path.open("rb") as handle:
            handle.seek(-1, 2)
            return handle.read(1) != b"\n"

    def get(self, arch_id: str, budget_key: str) -> dict | None:
        key = (arch_id, budget_key)
        if key not in self._memory:
            self._refresh()
        hit = self._memory.get(key)
        return dict(hit) if hit is not None else None

    def put(self, arch_id: str, budget_key: str, metrics: dict, spec: str = "") -> None:
        self._memory[(arch_id, budget_key)] = dict(metrics)
        if self.path is None:
            return
        self._refresh()  # so that our own line is not read back as new
        record = {"arch_id": arch_id, "budget_key": budget_key, "metrics": metrics, "spec": spec,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True) + "\n"
        if self._ends_mid_line():
            line = "\n" + line  # do not glue our record onto a line a killed run left unfinished
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)  # one write: appends stay whole lines
        self._offset = self.path.stat().st_size

    def __len__(self) -> int:
        self._refresh()
        return len(self._memory)


def _damaged(metrics: dict) -> bool:
    """A result that says it succeeded (no status, or "ok") cannot hold NaN or infinity; a
    diverged training legitimately records NaN with its status."""
    if metrics.get("status", "ok") != "ok":
        return False
    return any(isinstance(v, float) and not math.isfinite(v) for v in metrics.values())


# --------------------------------------------------------------------------------------
# data source


@dataclass
class DataSource:
    """Which dataset to use, loaded on first use (evaluators do no I/O when constructed)."""

    name: str = "fashion-mnist"
    root: str | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    dataset: Dataset | None = field(default=None, repr=False)
    input: str | None = None  # an image folder's HxWxC
    cache_dir: str | None = None  # where an image folder's decoded arrays are kept (no part of the key)

    @classmethod
    def of(cls, dataset: Dataset) -> DataSource:
        shape = "x".join(map(str, dataset.input_shape)) if dataset.name == "folder" else None
        return cls(dataset.name, dataset.source or None, dataset.val_fraction, dataset.split_seed, dataset, shape)

    @property
    def key(self) -> str:
        root = f"@{self.root}" if self.root and self.name not in DATASET_SHAPES else ""
        shape = f":{self.input}" if self.input else ""
        return f"{self.name}{root}{shape}:val{self.val_fraction:g}:split{self.split_seed}"

    @property
    def shape(self) -> tuple[tuple[int, int, int], int]:
        """(HxWxC, classes); reads the data only when the name does not fix them."""
        if self.dataset is None and self.name in DATASET_SHAPES:
            return DATASET_SHAPES[self.name]
        dataset = self.load()
        return dataset.input_shape, dataset.classes

    def load(self) -> Dataset:
        if self.dataset is None:
            folder = {"input": self.input, "cache_dir": self.cache_dir} if self.name == "folder" else {}
            self.dataset = load_dataset(self.name, self.root, val_fraction=self.val_fraction,
                                        split_seed=self.split_seed, **folder)
        return self.dataset


# --------------------------------------------------------------------------------------
# evaluators


class Evaluator(ABC):
    """``evaluate(spec) -> metrics`` with caching. Subclasses set ``objective`` (the metric to
    maximise), ``budget_key`` and ``source`` and implement :meth:`compute`."""

    objective: str
    budget_key: str
    source: DataSource

    def __init__(self, cache: ResultCache | str | Path | None = None):
        self.cache = cache if isinstance(cache, ResultCache) else ResultCache(cache)
        self.hits = 0
        self.misses = 0

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """HxWxC of the data (specs must have this input)."""
        return self.source.shape[0]

    @property
    def classes(self) -> int:
        return self.source.shape[1]

    def evaluate(self, spec: ArchSpec) -> dict[str, Any]:
        """Metrics of ``spec`` (from the cache when this arch and budget were seen before)."""
        cached = self.cache.get(spec.arch_id, self.budget_key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        ops = resolve(spec)
        metrics = {**self.compute(spec), "params": count_params(ops), "macs": count_macs(ops)}
        self.cache.put(spec.arch_id, self.budget_key, metrics, spec.to_string())
        return dict(metrics)

    @abstractmethod
    def compute(self, spec: ArchSpec) -> dict[str, Any]:
        """The metrics, uncached."""


class TrainEvaluator(Evaluator):
    """Short training; ``accuracy`` is validation accuracy in [0, 1] (0 when diverged).

    With a ``schedule`` (successive halving, nas/search/halving.py) a network trains rung by
    rung: :meth:`evaluate_rungs` yields the metrics at each rung and trains on, in memory, only
    when asked for the next; :meth:`evaluate` trains it to the top rung. Each rung's result is
    cached under a key naming the rungs up to it, so a result after 1 epoch never stands for
    one after 9."""

    objective = "accuracy"

    def __init__(self, source: DataSource, budget: Budget, cache=None, progress: bool = False,
                 schedule: RungSchedule | None = None):
        super().__init__(cache)
        self.source, self.budget, self.progress, self.schedule = source, budget, progress, schedule
        self.budget_key = f"train|{source.key}|{budget.key}"
        if schedule is not None:
            self.budget_key += f"|{schedule.key}"

    def compute(self, spec: ArchSpec) -> dict[str, Any]:
        return _train_metrics(train(spec, self.source.load(), self.budget, progress=self.progress))

    def evaluate(self, spec: ArchSpec) -> dict[str, Any]:
        if self.schedule is None:
            return super().evaluate(spec)
        metrics: dict[str, Any] = {}
        for metrics in self.evaluate_rungs(spec):
            if metrics.get("status", "ok") != "ok":
                break
        return metrics

    def rung_key(self, rung: int) -> str:
        """The cache key of the result at ``rung`` (1-based)."""
        return f"train|{self.source.key}|{self.budget.key}|rungs={self.schedule.describe(rung)}"

    def evaluate_rungs(self, spec: ArchSpec) -> Iterator[dict[str, Any]]:
        """The metrics at each rung in turn, with ``rung`` (1-based), ``rung_budget`` and
        ``rung_unit``; the network trains on to the next rung only when the caller asks for
        it. Ends after the top rung or a rung whose training failed. Rungs found in the cache
        are not trained again unless a later rung is asked for (the network is then rebuilt
        by training it again from the start, with the same seeds)."""
        ops = resolve(spec)
        sizes = {"params": count_params(ops), "macs": count_macs(ops)}
        trainer = _RungTrainer(spec, self.source.load(), self.budget, self.schedule, self.progress)
        for rung, value in enumerate(self.schedule.rungs, 1):
            key = self.rung_key(rung)
            metrics = self.cache.get(spec.arch_id, key)
            if metrics is None:
                self.misses += 1
                metrics = {**trainer.metrics_at(rung), **sizes}
                self.cache.put(spec.arch_id, key, metrics, spec.to_string())
            else:
                self.hits += 1
            yield {**metrics, "rung": rung, "rung_budget": value, "rung_unit": self.schedule.unit}
            if metrics.get("status", "ok") != "ok":
                return


def _train_metrics(result: TrainResult) -> dict[str, Any]:
    return {"accuracy": result.accuracy, "val_loss": result.val_loss, "train_loss": result.train_loss,
            "train_time_s": result.train_time_s, "images_per_s": result.images_per_s,
            "epochs_done": result.epochs_done, "status": result.status, "reason": result.reason}


class _RungTrainer:
    """One network trained rung by rung, kept in memory between rungs. Rung ``k`` continues
    the network of rung ``k - 1`` with one more training call (nas.train.fit): in epochs, for
    the epochs between the two rungs on the budget's data; in fractions, for one pass over
    the slice of the training split between the two shares."""

    def __init__(self, spec: ArchSpec, dataset: Dataset, budget: Budget, schedule: RungSchedule, progress: bool):
        self.spec, self.dataset, self.budget, self.schedule, self.progress = spec, dataset, budget, schedule, progress
        self.model = None
        self.reached = 0  # rungs trained so far
        self.seconds = 0.0  # training time of those rungs
        self.epochs = 0.0  # epochs over the budget's data (epochs) or over the training split (fraction)

    def metrics_at(self, rung: int) -> dict[str, Any]:
        """Metrics after training to ``rung``, training the rungs before it first when they
        are not in memory (their results came from the cache)."""
        result = None
        while self.reached < rung:
            result = self._train_next()
            if result.status != "ok":
                break
        metrics = _train_metrics(result)
        metrics.update(train_time_s=self.seconds, epochs_done=self.epochs)
        return metrics

    def _train_next(self) -> TrainResult:
        index = self.reached  # 0-based index of the rung trained now
        rungs, unit = self.schedule.rungs, self.schedule.unit
        before = rungs[index - 1] if index else 0
        if unit == "epochs":
            budget, data = dataclasses.replace(self.budget, epochs=int(rungs[index] - before)), None
        elif index == 0:
            budget, data = dataclasses.replace(self.budget, epochs=1, fraction=rungs[0]), None
        else:
            budget = dataclasses.replace(self.budget, epochs=1)
            data = training_slice(self.dataset, self.budget, before, rungs[index])
        if self.model is None:
            result = train(self.spec, self.dataset, budget, progress=self.progress)
        else:
            result = fit(self.model, self.dataset, budget, progress=self.progress, segment=index, data=data)
        self.model = result.model
        self.reached += 1
        self.seconds += result.train_time_s
        self.epochs += result.epochs_done * (1 if unit == "epochs" else rungs[index] - before)
        return result


class ProxyEvaluator(Evaluator):
    """Zero-cost proxies at initialisation on ``batches`` batches of ``batch_size`` training
    images (a fixed, seeded draw), averaged over the batches (synflow is data-free: once).
    ``objective`` defaults to the first proxy."""

    def __init__(self, source: DataSource, proxies: tuple[str, ...] = PROXIES, *, objective: str | None = None,
                 batch_size: int = 64, batches: int = 1, seed: int = 0, threads: int | None = None, cache=None):
        super().__init__(cache)
        proxies = tuple(proxies)
        unknown = [p for p in proxies if p not in PROXIES]
        if unknown or not proxies:
            name = unknown[0] if unknown else None
            raise EvaluatorError(f"unknown proxy {name!r}; expected some of {list(PROXIES)}")
        objective = objective or proxies[0]
        if objective not in proxies:
            raise EvaluatorError(f"objective {objective!r} must be one of the computed proxies {list(proxies)}")
        limits = (("batch_size", batch_size, 1, MAX_PROXY_BATCH), ("batches", batches, 1, MAX_PROXY_BATCHES),
                  ("seed", seed, 0, MAX_SEED), ("threads", threads, 1, 1024))
        for name, value, minimum, maximum in limits:
            if name == "threads" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
                raise EvaluatorError(f"proxy option {name} must be an integer >= {minimum} and <= {maximum}, "
                                     f"got {value!r}")
        self.source, self.proxies, self.objective = source, proxies, objective
        self.batch_size, self.batches, self.seed, self.threads = batch_size, batches, seed, threads
        self.budget_key = f"proxy|{source.key}|{'+'.join(proxies)}|b{batch_size}x{batches}|seed{seed}"
        self._data: tuple[torch.Tensor, torch.Tensor] | None = None

    def _batches(self, dataset: Dataset) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self._data is None:
            n = min(len(dataset.train), self.batch_size * self.batches)
            index = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(self.seed))[:n]
            self._data = (dataset.normalize(dataset.train.images[index]), dataset.train.labels[index])
        images, labels = self._data
        return [(images[i:i + self.batch_size], labels[i:i + self.batch_size])
                for i in range(0, len(images), self.batch_size)]

    def compute(self, spec: ArchSpec) -> dict[str, Any]:
        return self._proxies(spec, self.source.load())

    def _proxies(self, spec: ArchSpec, dataset: Dataset) -> dict[str, Any]:
        check_compatible(spec, dataset)
        model = build_network(spec, self.seed)
        start = time.perf_counter()
        with torch_threads(self.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            batches = self._batches(dataset)
            later = tuple(p for p in self.proxies if p != "synflow")  # synflow is data-free
            per_batch = [compute_proxies(self.proxies if i == 0 else later, model, x, y)
                         for i, (x, y) in enumerate(batches)]
        metrics: dict[str, Any] = {}
        for name in self.proxies:
            values = [scores[name] for scores in per_batch if name in scores]
            metrics[name] = sum(values) / len(values)
        metrics["proxy_time_s"] = time.perf_counter() - start
        return metrics


class TinyEvaluator(ProxyEvaluator):
    """For tests of other components: fast and deterministic. NASWOT and synflow on a batch
    of generated data shaped like each spec's input (any shape and class count; the
    ``input_shape``/``classes`` it reports are those of the named dataset)."""

    def __init__(self, source: DataSource, *, batch_size: int = 8, seed: int = 0, objective: str = "naswot",
                 cache=None):
        super().__init__(source, ("naswot", "synflow"), objective=objective, batch_size=batch_size, seed=seed,
                         threads=1, cache=cache)
        self.budget_key = f"tiny|b{batch_size}|seed{seed}"
        self._generated: dict[tuple, Dataset] = {}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return DATASET_SHAPES.get(self.source.name, DATASET_SHAPES["synthetic"])[0]

    @property
    def classes(self) -> int:
        return DATASET_SHAPES.get(self.source.name, DATASET_SHAPES["synthetic"])[1]

    def compute(self, spec: ArchSpec) -> dict[str, Any]:
        key = (spec.input, spec.classes)
        if key not in self._generated:
            self._generated[key] = load_dataset("synthetic", train=4 * self.batch_size, test=self.batch_size,
                                                shape=spec.input, classes=spec.classes, seed=self.seed)
        self._data = None  # batches are drawn per shape
        return self._proxies(spec, self._generated[key])


# --------------------------------------------------------------------------------------
# factory

_SOURCE_OPTIONS = {"dataset", "data_path", "val_fraction", "split_seed", "data_input", "data_cache"}
_OPTIONS = {
    "train": _SOURCE_OPTIONS | {f.name for f in fields(Budget)} | {"budget", "cache_path", "progress", "schedule"},
    "proxy": _SOURCE_OPTIONS | {"proxies", "objective", "batch_size", "batches", "seed", "threads", "cache_path"},
    "tiny": _SOURCE_OPTIONS | {"batch_size", "seed", "objective", "cache_path"},
}
KINDS = tuple(_OPTIONS)


def _closest(name: str, options) -> str:
    match = difflib.get_close_matches(str(name), list(options), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _source(options: dict) -> DataSource:
    dataset = options.pop("dataset", "fashion-mnist")
    root = options.pop("data_path", None)
    val_fraction, split_seed = options.pop("val_fraction", 0.1), options.pop("split_seed", 0)
    shape, cache = options.pop("data_input", None), options.pop("data_cache", None)
    if isinstance(dataset, Dataset):
        return DataSource.of(dataset)
    if dataset not in DATASETS:
        raise EvaluatorError(f"unknown dataset {dataset!r}{_closest(dataset, DATASETS)}; "
                             f"expected one of {list(DATASETS)} or a Dataset")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise EvaluatorError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or not 0 <= split_seed <= MAX_SEED:
        raise EvaluatorError(f"split_seed must be an integer in [0, {MAX_SEED}], got {split_seed!r}")
    if (shape is not None or cache is not None) and dataset != "folder":
        raise EvaluatorError(f"data_input and data_cache apply to the folder dataset only, not {dataset!r}")
    return DataSource(dataset, str(root) if root else None, val_fraction, split_seed, input=shape,
                      cache_dir=str(cache) if cache else None)


def _check_schedule_budget(schedule: RungSchedule, options: dict) -> None:
    """The rungs set how long a network trains: a budget that sets it too is refused."""
    if schedule.unit == "epochs" and "epochs" in options and options["epochs"] != 1:
        raise EvaluatorError(f"epochs {options['epochs']!r} conflicts with the schedule: its rungs "
                             f"{list(schedule.rungs)} are the epochs; drop the epochs option")
    if schedule.unit == "fraction":
        if options.get("fraction", 1.0) != 1.0:
            raise EvaluatorError(f"fraction {options['fraction']!r} conflicts with the schedule: its rungs "
                                 f"{list(schedule.rungs)} are the shares of the training split; drop the fraction "
                                 f"option")
        if options.get("epochs", 1) != 1:
            raise EvaluatorError(f"epochs {options['epochs']!r} conflicts with a schedule in fractions, which trains "
                                 f"one pass over each rung's share of the training split; drop the epochs option")


def make_evaluator(kind: str, **options: Any) -> Evaluator:
    """An evaluator by kind. Options:

    - every kind: ``dataset`` (a name of :data:`nas.data.DATASETS` or a loaded Dataset;
      default fashion-mnist), ``data_path`` (its folder), ``val_fraction``, ``split_seed``,
      ``cache_path`` (a JSON-lines file shared by runs); for an image folder ``data_input``
      (HxWxC) and ``data_cache`` (a folder for its decoded arrays);
    - ``train``: any :class:`~nas.train.Budget` field (epochs, fraction, batch_size, lr, seed,
      ...) or ``budget=Budget(...)``, ``progress`` (tqdm bars), and ``schedule`` (a
      :class:`~nas.search.halving.RungSchedule` or a mapping ``{rungs, keep, unit}``: train
      rung by rung for successive halving; its rungs replace ``epochs``, or ``fraction`` when
      in fractions);
    - ``proxy``: ``proxies`` (some of :data:`nas.proxies.PROXIES`), ``objective``,
      ``batch_size``, ``batches``, ``seed``, ``threads``;
    - ``tiny`` (tests): ``batch_size``, ``seed``, ``objective`` (naswot or synflow); it
      ignores the data options except to report the dataset's input shape.

    Raises EvaluatorError for an unknown kind or option, or a bad value. No data is read
    until the first evaluation.
    """
    if kind not in _OPTIONS:
        raise EvaluatorError(f"unknown evaluator kind {kind!r}{_closest(kind, KINDS)}; expected one of {list(KINDS)}")
    unknown = sorted(set(options) - _OPTIONS[kind])
    if unknown:
        raise EvaluatorError(f"unknown option {unknown[0]!r} for a {kind!r} evaluator"
                             f"{_closest(unknown[0], _OPTIONS[kind])}; expected some of {sorted(_OPTIONS[kind])}")
    options = dict(options)
    source = _source(options)
    cache = options.pop("cache_path", None)
    try:
        if kind == "tiny":
            return TinyEvaluator(source, cache=cache, **options)
        if kind == "proxy":
            return ProxyEvaluator(source, cache=cache, **options)
        progress, budget = options.pop("progress", False), options.pop("budget", None)
        schedule = options.pop("schedule", None)
        if budget is not None and options:
            raise EvaluatorError(f"give either budget=Budget(...) or budget fields, not both ({sorted(options)})")
        if schedule is not None:
            schedule = RungSchedule.of(schedule)
            _check_schedule_budget(schedule, options if budget is None else dataclasses.asdict(budget))
        return TrainEvaluator(source, budget or Budget(**options), cache=cache, progress=progress, schedule=schedule)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, (EvaluatorError, ScheduleError)):
            raise
        raise EvaluatorError(f"bad option for a {kind!r} evaluator: {exc}") from None
