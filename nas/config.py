"""Experiment configs: YAML in, typed and validated objects out.

Everything is checked before any work starts: an unknown key is an error naming it (and the
closest valid key, for typos), a wrong type or an impossible value is an error naming the
key's full path (``objective.max_latency_ms``). Every number has a finite range, declared
with its field (:func:`bounded`): NaN, infinity and booleans are never numbers here. YAML is
read with ``safe_load`` only.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from nas.latency.table import MissingPolicy
from nas.names import UnsafeNameError, check_name
from nas.space import closest
from nas.strict_parse import load_yaml


class ConfigError(ValueError):
    """An invalid experiment config; the message names the key and the bad value."""


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric field; ``low_open`` excludes ``low`` itself."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        def number(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else repr(float(x))

        return f"{'(' if self.low_open else '['}{number(self.low)}, {number(self.high)}{')' if self.high_open else ']'}"


def bounded(default: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Any:
    """A dataclass field whose value (when not None) must lie in the range; checked by
    :func:`parse_section` for every config, whatever its source. ``dataclasses.MISSING``
    as the default makes the key required."""
    return field(default=default, metadata={"range": Range(low, high, low_open, high_open)})


DAY_S = 86_400.0
MAX_CONFIG_BYTES = 1_000_000  # a config is a page of YAML; a larger file is a mistake


# --------------------------------------------------------------------------------------
# sections


@dataclass(frozen=True)
class SpaceConfig:
    name: str
    options: dict[str, Any] = field(default_factory=dict)


# Natural images (photos), for which a random crop after zero padding and a horizontal flip keep
# the label: augmented unless the config says otherwise. Digits and clothing (MNIST,
# Fashion-MNIST) are centred and a mirrored digit is another glyph: not augmented unless asked.
AUGMENTED_DATASETS = ("cifar10", "cifar100", "cifar100-coarse", "folder")
AUGMENT_PADDING = 4  # pixels of zero padding before the random crop (the usual CIFAR recipe)
IMAGE_CHANNELS = (1, 3)  # what an image folder is converted to: grey or RGB


@dataclass(frozen=True)
class DatasetConfig:
    name: str = "fashion-mnist"
    path: str | None = None
    val_fraction: float = bounded(0.1, 0.0, 1.0, low_open=True, high_open=True)
    input: str | None = None  # folder: HxWxC the images are resized and converted to
    augment: bool | None = None  # random crop (padding 4) and flip; None: on for AUGMENTED_DATASETS
    cache: str | None = None  # folder: where decoded images are kept (None: the run folder's data_cache/)

    def validate(self, where: str) -> None:
        if self.name != "folder":
            for key in ("input", "cache"):
                if getattr(self, key) is not None:
                    raise ConfigError(f"{where}.{key} applies to the folder dataset only, got name {self.name!r}")
            return
        if self.path is None:
            raise ConfigError(f"{where}.path is required for the folder dataset: the folder holding "
                              "train/<class>/ and test/<class>/")
        if self.input is None:
            raise ConfigError(f"{where}.input is required for the folder dataset: the HxWxC the images are "
                              "resized and converted to (C 1 for grey, 3 for RGB), e.g. 64x64x3")
        from nas.spec import SpecError, parse_shape

        try:
            shape = parse_shape(self.input, f"{where}.input")
        except SpecError as exc:
            raise ConfigError(str(exc)) from None
        if shape[2] not in IMAGE_CHANNELS:
            raise ConfigError(f"{where}.input must have 1 (grey) or 3 (RGB) channels, got {self.input!r}")

    @property
    def augments(self) -> bool:
        return self.augment if self.augment is not None else self.name in AUGMENTED_DATASETS

    def augmentation(self) -> dict[str, Any]:
        """The training budget fields (nas.train.Budget) of this section's augmentation."""
        return {"crop_padding": AUGMENT_PADDING if self.augments else 0, "flip": self.augments}

    def cache_dir(self, run_folder: str | Path | None) -> Path | None:
        """Where an image folder's decoded arrays are kept: ``cache``, else inside the run folder
        (None: no other dataset is cached, nor a folder read without a run folder)."""
        if self.name != "folder":
            return None
        if self.cache:
            return Path(self.cache)
        return Path(run_folder) / "data_cache" if run_folder is not None else None


@dataclass(frozen=True)
class ScheduleConfig:
    """Successive halving (nas/search/halving.py): candidates are judged at each rung and
    only the best ``keep`` share trains on to the next."""

    rungs: list[int | float]
    keep: float = bounded(0.33, 0.0, 1.0, low_open=True, high_open=True)
    unit: Literal["epochs", "fraction"] = "epochs"

    def validate(self, where: str) -> None:
        from nas.search.halving import RungSchedule, ScheduleError

        try:
            RungSchedule(tuple(self.rungs), self.keep, self.unit)
        except ScheduleError as exc:
            raise ConfigError(f"{where}{str(exc).removeprefix('schedule')}") from None


@dataclass(frozen=True)
class EvaluatorConfig:
    """``kind``, ``options`` and ``schedule`` go to :func:`nas.evaluate.make_evaluator` (which
    validates the options)."""

    kind: str = "train"
    options: dict[str, Any] = field(default_factory=dict)
    schedule: ScheduleConfig | None = None

    def validate(self, where: str) -> None:
        if self.schedule is not None and self.kind != "train":
            raise ConfigError(f"{where}.schedule (successive halving) needs the train evaluator, got kind "
                              f"{self.kind!r}")


@dataclass(frozen=True)
class LatencyConfig:
    table: str  # a table path or a shipped table's name (nas latency tables)
    missing: MissingPolicy = "error"
    input: str | None = None  # deployment shape HxWxC the networks are priced at (default: the training input)


@dataclass(frozen=True)
class NetAdaptConfig:
    start: str  # a reference network or spec file, a member of the space
    budget_ms: float = bounded(dataclasses.MISSING, 0.0, 1e6, low_open=True)
    # first iteration's latency reduction, as a fraction of the start latency
    initial_reduction: float = bounded(0.1, 0.0, 1.0, low_open=True, high_open=True)
    decay: float = bounded(0.9, 0.0, 1.0, low_open=True)  # each iteration's reduction is the last one's times this
    max_iterations: int = bounded(20, 1, 1000)


@dataclass(frozen=True)
class ObjectiveConfig:
    kind: Literal["pareto", "mnas", "netadapt"] = "pareto"
    # pareto: hard constraint (infeasible nets are never trained)
    max_latency_ms: float | None = bounded(None, 0.0, 1e6, low_open=True)
    target_ms: float | None = bounded(None, 0.0, 1e6, low_open=True)  # mnas: T
    mode: Literal["soft", "hard"] = "soft"  # mnas: soft alpha = beta = -0.07; hard alpha = 0, beta = -1
    alpha: float | None = bounded(None, -10.0, 10.0)  # mnas: exponent when LAT <= T (overrides mode)
    beta: float | None = bounded(None, -10.0, 10.0)  # mnas: exponent when LAT > T (overrides mode)
    extra: list[Literal["macs", "params"]] = field(default_factory=list)  # pareto: extra objectives
    max_macs: int | None = bounded(None, 1, 10**15)
    max_params: int | None = bounded(None, 1, 10**12)
    netadapt: NetAdaptConfig | None = None

    def validate(self, where: str) -> None:
        if self.kind == "mnas" and self.target_ms is None:
            raise ConfigError(f"{where}.target_ms is required for the mnas objective (the latency target T in ms)")
        if self.kind == "netadapt" and self.netadapt is None:
            raise ConfigError(f"{where}.netadapt (start, budget_ms, ...) is required for the netadapt objective")
        if self.kind != "pareto" and self.extra:
            raise ConfigError(f"{where}.extra objectives apply to the pareto objective only, got kind {self.kind!r}")
        if len(set(self.extra)) != len(self.extra):
            raise ConfigError(f"{where}.extra lists an objective twice: {self.extra!r}")

    @property
    def exponents(self) -> tuple[float, float]:
        """(alpha, beta) of the MnasNet reward."""
        alpha, beta = (-0.07, -0.07) if self.mode == "soft" else (0.0, -1.0)
        return (alpha if self.alpha is None else self.alpha, beta if self.beta is None else self.beta)


SAMPLERS = ("nsga2", "nsga3", "tpe", "random")
# NSGA-II children per trial. benchmarks/search_quality.py: 8 gained 0.06 more in the hypervolume
# ratio at 100 trials and nothing at 300, for 2 ms more per trial while the surrogate ranks them.
DEFAULT_CANDIDATES = 4


@dataclass(frozen=True)
class SamplerConfig:
    kind: Literal["auto", "nsga2", "nsga3", "tpe", "random"] = "auto"  # auto: nsga2 for pareto, tpe otherwise
    population_size: int = bounded(16, 2, 10_000)
    n_startup_trials: int = bounded(10, 0, 100_000)
    # NSGA-II only: children proposed per trial, of which a surrogate of the score keeps the most
    # promising (nas/search/preselect.py); 1 is plain NSGA-II. None: DEFAULT_CANDIDATES.
    candidates: int | None = bounded(None, 1, 64)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    space: SpaceConfig
    latency: LatencyConfig
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    trials: int | None = bounded(None, 1, 1_000_000)
    timeout_s: float | None = bounded(None, 0.0, 365 * DAY_S, low_open=True)
    seed: int = bounded(0, 0, 2**31 - 1)  # NumPy and PyTorch take seeds below 2**32; workers add 1000 each
    storage: str | None = None  # default: SQLite in the output folder
    study: str | None = None  # default: the experiment name
    output: str | None = None  # default: runs/<name>
    baselines: list[str] = field(default_factory=list)  # reference names or spec files
    description: str = ""
    # RDB storages (SQLite, PostgreSQL): a running trial records a heartbeat this often; one
    # silent for grace_period_s is failed and re-queued (its worker died).
    heartbeat_interval_s: int = bounded(5, 1, 3600)
    grace_period_s: int = bounded(20, 2, 24 * 3600)

    def validate(self, where: str) -> None:
        # Both become paths (runs/<name>, study names in file names of reports and exports).
        for key in ("name", "study"):
            value = getattr(self, key)
            if value is not None:
                try:
                    check_name(value, key)
                except UnsafeNameError as exc:
                    raise ConfigError(str(exc)) from None
        if self.trials is None and self.timeout_s is None and self.objective.kind != "netadapt":
            raise ConfigError("give trials and/or timeout_s: a search needs a stopping rule")
        if self.evaluator.schedule is not None and self.objective.kind == "netadapt":
            raise ConfigError("evaluator.schedule (successive halving) does not apply to the netadapt objective, "
                              "which compares each step's networks at one training budget")
        if self.sampler.candidates is not None and self.sampler_kind() != "nsga2":
            raise ConfigError(f"sampler.candidates applies to the nsga2 sampler only, "
                              f"got sampler {self.sampler_kind()!r}")
        given = sorted({"crop_padding", "flip"} & set(self.evaluator.options))
        if self.dataset.augment is not None and given:
            raise ConfigError(f"dataset.augment and evaluator.options.{given[0]} both set the augmentation: give "
                              "one (dataset.augment: true means crop_padding 4 and flip)")
        if self.grace_period_s <= self.heartbeat_interval_s:
            raise ConfigError(f"grace_period_s must exceed heartbeat_interval_s ({self.heartbeat_interval_s}), "
                              f"got {self.grace_period_s!r}")

    @property
    def study_name(self) -> str:
        return self.study or self.name

    def output_dir(self) -> Path:
        return Path(self.output or f"runs/{self.name}")

    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.output_dir() / 'study.db'}"

    def sampler_kind(self) -> str:
        if self.sampler.kind != "auto":
            return self.sampler.kind
        return "nsga2" if self.objective.kind == "pareto" else "tpe"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------
# generic parsing of the dataclasses above


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            type(None): "null"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        real = [option for option in options if option is not type(None)]
        if len(real) == 1:  # an optional value: the option's own message says what was expected
            try:
                return _convert(value, real[0], where)
            except ConfigError as exc:
                if str(exc).startswith(f"{where} must be {_type_name(real[0])}, got"):
                    raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}") from None
                raise
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, where)
            except ConfigError as exc:
                if not str(exc).startswith(f"{where} must be"):
                    raise  # the value had the right shape; a nested key is wrong
        raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = closest(str(value), [str(c) for c in choices])
            raise ConfigError(f"{where} must be one of {list(choices)}, got {value!r}{hint}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}")
        return [_convert(v, typing.get_args(tp)[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return parse_section(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp!r} at {where}")  # a bug in this module


def parse_section(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys, types and values."""
    label = where or "the config"
    if not isinstance(data, dict):
        raise ConfigError(f"{label} must be a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in fields:
            raise ConfigError(f"unknown key {prefix}{key!s}{closest(str(key), fields)}; "
                              f"expected one of {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{prefix}{name}")
            allowed = f.metadata.get("range")
            if allowed is not None and kwargs[name] is not None and not allowed.contains(kwargs[name]):
                raise ConfigError(f"{prefix}{name} must be in {allowed}, got {data[name]!r}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {prefix}{name} ({_type_name(hints[name])})")
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate(where)
    return obj


def _shorthand(data: dict) -> dict:
    """Accept ``space: hybrid`` for ``space: {name: hybrid}`` and likewise for other sections."""
    data = dict(data)
    for key, inner in (("space", "name"), ("dataset", "name"), ("evaluator", "kind"), ("objective", "kind"),
                       ("sampler", "kind"), ("latency", "table")):
        if isinstance(data.get(key), str):
            data[key] = {inner: data[key]}
    return data


def parse_config(data: Any, source: str = "config") -> ExperimentConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: an experiment config must be a mapping of keys to values, got {data!r}")
    try:
        return parse_section(ExperimentConfig, _shorthand(data), "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML experiment config."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder; expected a YAML experiment config")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes; an experiment config is at most "
                          f"{MAX_CONFIG_BYTES} bytes")
    try:
        data = load_yaml(path.read_text())  # safe_load that also refuses a key given twice
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be an experiment config") from None
    return parse_config(data, str(path))


def override(config: ExperimentConfig, **changes: Any) -> ExperimentConfig:
    """Command-line overrides: ``None`` values leave the config's value."""
    changes = {k: v for k, v in changes.items() if v is not None}
    data = dataclasses.asdict(config)
    data.update(changes)
    return parse_config(data, "command line")
