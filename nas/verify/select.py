"""What ``nas verify`` retrains: networks spread along a run's Pareto front, and the run's
baselines, each with what the search recorded about it (predicted latency, search score).

Everything is read back from the run's study (:func:`nas.report.open_run`), as ``nas pareto``
and ``nas export`` read it, so the front verified is the front the report shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.config import ExperimentConfig
from nas.spec import ArchSpec, SpecError
from nas.verify.settings import VerifyError


@dataclass(frozen=True)
class Candidate:
    """One network to retrain. ``role`` is "pick" (from the front) or "baseline"; ``name`` is
    the trial number of a pick, the reference name of a baseline."""

    role: str
    name: str
    spec: ArchSpec
    latency_ms: float | None
    search_score: float | None
    trial: int | None = None

    @property
    def arch_id(self) -> str:
        return self.spec.arch_id


def spread_indices(count: int, picks: int) -> list[int]:
    """``picks`` positions among ``count`` networks ordered by latency, evenly spaced by rank:
    the first (fastest) and the last (most accurate, on a front) always among them when
    ``picks`` >= 2; all of them when ``picks`` >= ``count``; the fastest when ``picks`` is 1."""
    if picks >= count:
        return list(range(count))
    if picks == 1:
        return [0]
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, picks)})


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def front_picks(frame: pd.DataFrame, picks: int) -> list[Candidate]:
    """``picks`` networks spread along the Pareto front of ``frame`` (a trials frame). Baselines
    queued as trials are left out of the choice: a pick is there to be compared with them."""
    from nas.report import pareto_frame

    searched = frame[frame["baseline"].isna()] if "baseline" in frame else frame
    front = pareto_frame(searched)
    specs = frame.drop_duplicates("number").set_index("number")["spec"]
    chosen = []
    for index in spread_indices(len(front), picks):
        row = front.iloc[index]
        number = int(row["number"])
        chosen.append(Candidate("pick", str(number), _spec(specs.get(number), f"trial {number}"),
                                _number(row["latency_ms"]), _number(row["score"]), trial=number))
    return chosen


def _spec(text: Any, what: str) -> ArchSpec:
    try:
        return ArchSpec.from_record(text, what)
    except SpecError as exc:
        raise VerifyError(f"{exc}; it cannot be retrained") from None


def run_baselines(study, frame: pd.DataFrame) -> list[Candidate]:
    """The run's baselines: members of the space are trials with the user attribute
    "baseline"; the others were evaluated once and stored in the study's "baselines"
    attribute with their spec string."""
    chosen: dict[str, Candidate] = {}
    done = frame[frame["baseline"].notna() & (frame["state"] == "COMPLETE")] if "baseline" in frame else frame[:0]
    for _, row in done.iterrows():
        name = str(row["baseline"])
        chosen.setdefault(name, Candidate("baseline", name, _spec(row.get("spec"), f"baseline {name}"),
                                          _number(row["latency_ms"]), _number(row["score"]),
                                          trial=int(row["number"])))
    for name, record in study.user_attrs.get("baselines", {}).items():
        if name in chosen:
            continue
        try:
            spec = ArchSpec.from_string(record["spec_string"])
        except (KeyError, TypeError, SpecError) as exc:
            raise VerifyError(f"baseline {name}: its recorded spec cannot be read ({exc})") from None
        if record.get("arch_id") not in (None, spec.arch_id):
            raise VerifyError(f"baseline {name}: its recorded spec does not match its arch_id {record['arch_id']}")
        chosen[name] = Candidate("baseline", name, spec, _number(record.get("latency_ms")),
                                 _number(record.get("score")))
    return list(chosen.values())


@dataclass(frozen=True)
class RunNetworks:
    """What a run offers to verify: the chosen picks, its baselines and its config."""

    folder: Path
    config: ExperimentConfig
    study: Any
    picks: list[Candidate]
    baselines: list[Candidate]


def read_run(folder: str | Path, picks: int) -> RunNetworks:
    """The picks and baselines of the run in ``folder``.

    Raises:
        VerifyError: the folder is not a run (no folder, no config.yaml, no study), or its
            front is empty.
    """
    from nas.export.selection import ExportError, read_run_config
    from nas.report import ReportError, open_run, trials_frame

    folder = Path(folder)
    try:
        config = read_run_config(folder)
        if config.storage is None and not (folder / "study.db").is_file():
            # checked here: opening a missing SQLite file would create an empty one
            raise VerifyError(f"{str(folder)!r} is not a run folder: it has config.yaml but no study.db "
                              "(run `nas search` first)")
        study = open_run(folder)
    except (ExportError, ReportError) as exc:
        raise VerifyError(" ".join(str(exc).split())) from None  # one line, as the command line prints it
    frame = trials_frame(study)
    chosen = front_picks(frame, picks)
    if not chosen:
        raise VerifyError(f"the Pareto front of {str(folder)!r} is empty: no searched network has completed an "
                          "evaluation yet (run or resume `nas search` first)")
    return RunNetworks(folder, config, study, chosen, run_baselines(study, frame))
