"""Pick the architecture to export from a search run: by trial number, by position on the
Pareto front, or as the most accurate Pareto network under a latency limit.

Everything is read back from the run's Optuna study (:func:`nas.report.open_run`), so the
choice matches what ``nas pareto RUN_FOLDER`` prints: ``--pareto-index K`` is the K-th row of
that table (0 = the fastest network).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nas.config import ConfigError, ExperimentConfig, parse_config
from nas.spec import ArchSpec, SpecError


class ExportError(ValueError):
    """An export that cannot proceed as asked; the message names the bad value and the options."""


@dataclass(frozen=True)
class Selection:
    """The architecture chosen from a run, with what the search recorded about it.

    ``predicted_ms`` is the latency the search predicted with the run's device table (ms);
    ``score`` is the search's validation score (accuracy for the train evaluator).
    """

    spec: ArchSpec
    trial: int
    score: float | None
    predicted_ms: float | None
    macs: int | None
    params: int | None
    how: str
    run_folder: str
    config: ExperimentConfig

    def to_dict(self) -> dict[str, Any]:
        return {"run_folder": self.run_folder, "trial": self.trial, "chosen_by": self.how,
                "search_score": self.score, "predicted_latency_ms": self.predicted_ms,
                "macs": self.macs, "params": self.params, "arch_id": self.spec.arch_id,
                "spec_string": self.spec.to_string()}


def read_run_config(folder: str | Path) -> ExperimentConfig:
    """The run folder's config.yaml, parsed and validated like the config the run started from.

    Raises:
        ExportError: the folder or its config.yaml is missing, unreadable or not a valid config.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"run folder {str(folder)!r} does not exist (a folder written by `nas search CONFIG`)")
    path = folder / "config.yaml"
    if not path.is_file():
        raise ExportError(f"{str(folder)!r} is not a run folder: it has no config.yaml (run `nas search` first)")
    try:
        return parse_config(yaml.safe_load(path.read_text()), str(path))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path} is not readable YAML: {exc}") from None
    except ConfigError as exc:
        raise ExportError(f"{path} is not a valid experiment config: {str(exc).removeprefix(f'{path}: ')}") from None


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _spec_of(row: pd.Series) -> ArchSpec:
    try:
        return ArchSpec.from_record(row.get("spec"), f"trial {row['number']}")
    except SpecError as exc:
        raise ExportError(f"{exc}; it cannot be exported") from None


def _selection(row: pd.Series, how: str, folder: str | Path, config: dict) -> Selection:
    params, macs = _number(row.get("params")), _number(row.get("macs"))
    return Selection(spec=_spec_of(row), trial=int(row["number"]), score=_number(row.get("score")),
                     predicted_ms=_number(row.get("latency_ms")), macs=None if macs is None else int(macs),
                     params=None if params is None else int(params), how=how, run_folder=str(folder),
                     config=config)


def _by_trial(frame: pd.DataFrame, number: int) -> pd.Series:
    rows = frame[frame["number"] == number]
    if rows.empty:
        numbers = sorted(int(n) for n in frame["number"])
        known = f"trials {numbers[0]}..{numbers[-1]}" if numbers else "no trials"
        raise ExportError(f"unknown trial {number}: the run has {known}")
    row = rows.iloc[0]
    if row["state"] != "COMPLETE" or not isinstance(row.get("spec"), str):
        reason = f" ({row['reason']})" if isinstance(row.get("reason"), str) and row["reason"] else ""
        raise ExportError(f"trial {number} is {row['state'].lower()}{reason}, not a completed architecture")
    return row


def _check_choice(trial: int | None, pareto_index: int | None, max_latency_ms: float | None) -> None:
    given = [name for name, value in (("trial", trial), ("pareto_index", pareto_index),
                                      ("max_latency_ms", max_latency_ms)) if value is not None]
    if len(given) != 1:
        raise ExportError("choose the architecture with exactly one of --trial N, --pareto-index K or "
                          f"--max-latency MS (got {', '.join(given) or 'none'})")
    for name, value in (("--trial", trial), ("--pareto-index", pareto_index)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ExportError(f"{name} must be a whole number, got {value!r}")
    if max_latency_ms is not None and not (math.isfinite(max_latency_ms) and max_latency_ms > 0):
        raise ExportError(f"--max-latency must be a positive number of milliseconds, got {max_latency_ms!r}")


def select_architecture(folder: str | Path, *, trial: int | None = None, pareto_index: int | None = None,
                        max_latency_ms: float | None = None) -> Selection:
    """Choose one architecture of the run in ``folder`` (exactly one criterion):

    - ``trial``: that trial (it must have completed);
    - ``pareto_index``: the K-th network of the Pareto front sorted by predicted latency
      (0 = fastest, as `nas pareto` numbers them; a negative index is refused, not counted
      from the end, so that a typo never exports another network than the one asked for);
    - ``max_latency_ms``: the most accurate Pareto network predicted at most that many ms.

    Raises:
        ExportError: a missing run folder, no or several criteria, an unknown or unfinished
            trial, an empty Pareto front, an index out of range, or no network fast enough.
    """
    from nas.report import ReportError, open_run, pareto_frame, trials_frame

    _check_choice(trial, pareto_index, max_latency_ms)
    config = read_run_config(folder)
    try:
        frame = trials_frame(open_run(folder))
    except ReportError as exc:
        raise ExportError(str(exc)) from None
    if trial is not None:
        return _selection(_by_trial(frame, trial), f"trial {trial}", folder, config)
    front = pareto_frame(frame)
    if front.empty:
        raise ExportError(f"the Pareto front of {str(folder)!r} is empty: no trial has completed an evaluation yet")
    specs = frame.drop_duplicates("number").set_index("number")["spec"]
    front = front.assign(spec=front["number"].map(specs))
    if pareto_index is not None:
        if isinstance(pareto_index, bool) or not 0 <= pareto_index < len(front):
            raise ExportError(f"--pareto-index {pareto_index} is out of range: the Pareto front has "
                              f"{len(front)} networks (0..{len(front) - 1}, 0 = fastest; see `nas pareto`)")
        row = front.iloc[pareto_index]
        return _selection(row, f"Pareto index {pareto_index} of {len(front)} (0 = fastest)", folder, config)
    fast = front[front["latency_ms"] <= max_latency_ms]
    if fast.empty:
        raise ExportError(f"no Pareto network is predicted at or under {max_latency_ms:g} ms; the fastest takes "
                          f"{front['latency_ms'].min():.3f} ms (trial {int(front.iloc[0]['number'])})")
    row = fast.sort_values(["score", "latency_ms"], ascending=[False, True]).iloc[0]
    return _selection(row, f"most accurate Pareto network at or under {max_latency_ms:g} ms", folder, config)
