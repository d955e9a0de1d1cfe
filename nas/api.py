"""The Python API: the jobs of the ``nas`` commands, from a notebook or a script.

::

    import nas

    config = nas.load_config("experiments/quickstart.yaml")         # or nas.make_config(...)
    config = nas.change_config(config, trials=8, output="runs/try")
    nas.run_search(config)                                          # nas search
    front = nas.pareto_front("runs/try")                            # nas pareto, as a DataFrame
    nas.price("mobilenet_v2_1.0", "pixel1-proxylessnas").latency_ms  # nas latency predict
    nas.export_network("runs/try", "exported/", pareto_index=0)     # nas export

Each function wraps the module that does the work (its docstring names it), so the API and
the commands cannot drift apart. docs/python-api.md is the guide; its examples are run by the
test suite.

Importing this module changes no global state (warning filters, logging, the matplotlib
backend, threads) and loads none of the heavy libraries: PyTorch, Optuna, pandas and
matplotlib are imported by the functions that need them. Reading a finished run never imports
the search controller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.archs import load_arch
from nas.config import ConfigError, ExperimentConfig, load_config, parse_config
from nas.export import export_network  # the export's one entry function; its package loads lazily
from nas.spec import ArchSpec, SpecError
from nas.verify.settings import DEFAULTS as VERIFY_DEFAULTS

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from nas.search.controller import RunSummary

__all__ = ["ArchSpec", "ConfigError", "ExperimentConfig", "Price", "SpecError", "change_config", "export_network",
           "latency_tables", "load_arch", "load_config", "make_config", "open_run", "pareto_front", "price",
           "run_search", "trials", "verify_run", "write_report"]

Run = str | Path  # a run folder, as written by ``nas search``


# --------------------------------------------------------------------------------------
# configs (load_config is nas.config's own)


def make_config(**keys: Any) -> ExperimentConfig:
    """An experiment config built in Python, from the keys a YAML config has
    (docs/configuration.md), checked exactly as a YAML file is: a section may be a mapping
    or, as in YAML, its one-word shorthand (``space="hybrid"``, ``evaluator="tiny"``).

    Raises:
        ConfigError: an unknown key, a wrong type or a value out of range (the message names
            the key and the value).
    """
    return parse_config(keys, "make_config")


def change_config(config: ExperimentConfig, **changes: Any) -> ExperimentConfig:
    """A copy of ``config`` with ``changes`` (top-level keys, as in :func:`make_config`),
    checked again as a whole; ``config`` itself is left as it was. A section given here
    replaces the config's section (``evaluator={"kind": "tiny"}`` drops the old options).

    Raises:
        ConfigError: as :func:`make_config`.
    """
    return parse_config({**config.to_dict(), **changes}, "change_config")


# --------------------------------------------------------------------------------------
# searching


def run_search(config: ExperimentConfig | str | Path, *, progress: bool = True, worker: int | None = None,
               force_new: bool = False) -> RunSummary:
    """Run (or resume) the search of ``config`` (an :class:`ExperimentConfig` or the path of
    a YAML config), as ``nas search`` does: the study, ``config.yaml`` and the report are
    written into ``config.output_dir()``. Returns the run's summary (trial counts, time,
    notes; ``summary.study`` is the Optuna study).

    While the search runs only Optuna's warnings are logged (it logs every trial at INFO);
    the caller's Optuna verbosity is restored when it returns. ``worker``: this process's
    index when several share one study (it offsets the seed); ``force_new``: start a new
    study beside one made with another setup instead of refusing. Wraps
    :func:`nas.experiment.run_experiment`.

    Raises:
        ValueError: the config, its table, space or output folder cannot be used (the message
            says which and why); a ConfigError for a bad YAML file.
    """
    from nas.experiment import run_experiment

    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    return run_experiment(config, progress=progress, worker=worker, force_new=force_new)


# --------------------------------------------------------------------------------------
# reading a run (nas.report: never the controller)


def open_run(folder: Run | None = None, *, storage: str | None = None, study: str | None = None) -> optuna.Study:
    """The Optuna study of a run folder (its ``config.yaml`` names the storage and study),
    or of ``storage`` and ``study`` given directly (a PostgreSQL run, say). Nothing is
    written: a folder without a study database is an error, not a new empty study.

    Raises:
        ValueError: not a run folder, no study database, or no such study.
    """
    from nas.report import open_run as open_study

    return open_study(folder, storage=storage, study=study)


def _study(run: Run | optuna.Study) -> optuna.Study:
    return open_run(run) if isinstance(run, (str, Path)) else run


def trials(run: Run | optuna.Study) -> pd.DataFrame:
    """One row per trial of a run folder (or an open study): number, state, score, latency_ms,
    macs, params, feasibility, baseline and duplicate marks, arch_id, spec_string, timings and
    the evaluator's metrics. The table ``trials.csv`` of a report holds."""
    from nas.report import trials_frame

    return trials_frame(_study(run))


def pareto_front(run: Run | optuna.Study) -> pd.DataFrame:
    """The accuracy-vs-latency Pareto front of a run folder (or an open study), fastest first:
    number (the trial), score, latency_ms, macs, params, arch_id, spec_string. Row ``k`` is
    what ``nas export --pareto-index k`` exports; empty while no trial has been evaluated."""
    from nas.report import pareto_frame, trials_frame

    return pareto_frame(trials_frame(_study(run)))


def write_report(run: Run | optuna.Study, output: str | Path | None = None) -> dict[str, Path]:
    """Write trials.csv, pareto.csv, the plots and report.html for a run, into ``output``
    (default: the run folder itself), as ``nas report`` does. Returns the written paths by
    file name."""
    from nas.report import write_report as write

    if output is None:
        if not isinstance(run, (str, Path)):
            raise ValueError("give output=FOLDER to write the report of a study (only a run folder has a default)")
        output = run
    return write(_study(run), output)


def verify_run(run: Run, *, picks: int = VERIFY_DEFAULTS["picks"], epochs: int = VERIFY_DEFAULTS["epochs"],
               seeds: int = VERIFY_DEFAULTS["seeds"], progress: bool = True,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """Retrain ``picks`` networks spread along a run's Pareto front and the run's baselines
    from scratch, ``seeds`` seeds each, ``epochs`` epochs on the whole training set, and test
    them on the test split the search never saw, as ``nas verify`` does; writes
    ``verify.json`` and the report's "Verified" section, and returns the verdict (see
    docs/verify.md): per network the mean and spread of test accuracy, the rank correlation
    of search score and test accuracy, and the picks that beat a baseline. Finished trainings
    are cached in the run folder, so an interrupted call resumes. Wraps
    :func:`nas.verify.run.verify_run`.

    Raises:
        ValueError: before any training, a setting out of range, a folder that is not a run,
            an empty front or a dataset that cannot be loaded.
    """
    from nas.verify import verify_run as verify

    return verify(run, picks=picks, epochs=epochs, seeds=seeds, progress=progress, log=log)


# --------------------------------------------------------------------------------------
# latency


@dataclass(frozen=True)
class Price:
    """An architecture's predicted latency on a table's device (see :func:`price`)."""

    latency_ms: float
    arch_id: str
    table: str
    device: str | None
    runtime: str | None
    threads: int | None
    input: str | None  # the shape the table was measured at, HxWxC
    missing_policy: str  # what was done with ops the table lacks
    estimated_ops: tuple[str, ...]  # keys of the ops estimated rather than measured
    ops: tuple[dict, ...] = dataclasses.field(repr=False)  # per-op rows: key, median_ms, share, ...


def price(arch: str | ArchSpec, table: str | Path, *, missing: str | None = None) -> Price:
    """Predict ``arch``'s latency on a latency table, as ``nas latency predict`` does.

    ``arch``: an :class:`ArchSpec`, a reference network's name (built at the table's input
    shape and class count), a spec string or a spec file. ``table``: a shipped table's name
    (:func:`latency_tables`) or a table's path. ``missing``: what to do with ops the table
    lacks (``error``, ``nearest``, ``interpolate``, ``estimate``; default: the table's own).

    Raises:
        ValueError: an unknown table or architecture, an architecture built for another input
            shape than the table's, or ops the table lacks under the ``error`` policy (the
            message lists them and the command that measures them).
    """
    import warnings

    from nas.archs import load_arch_for_table
    from nas.latency import load_latency_model
    from nas.latency.deployment import price as price_spec
    from nas.latency.errors import MissingOpsError
    from nas.latency.table import EstimatedLatencyWarning
    from nas.ops import resolve

    model = load_latency_model(table, missing=missing)
    provenance = getattr(model, "provenance", {}) or {}
    spec = arch if isinstance(arch, ArchSpec) else load_arch_for_table(arch, provenance)
    model.check_input(spec.input)
    ops = resolve(spec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EstimatedLatencyWarning)  # listed in estimated_ops instead
            latency_ms = price_spec(model, spec)
            rows = model.breakdown(ops)
    except MissingOpsError as exc:
        policy = getattr(model, "missing_policy", "error")
        if policy != "error" or not hasattr(model, "missing_error"):
            raise
        raise model.missing_error(exc.keys, arch if isinstance(arch, str) else spec.arch_id) from None
    rows = tuple(rows) if isinstance(rows, list) else ()
    return Price(latency_ms=latency_ms, arch_id=spec.arch_id, table=str(table), device=provenance.get("device"),
                 runtime=provenance.get("runtime"), threads=provenance.get("threads"), input=provenance.get("input"),
                 missing_policy=getattr(model, "missing_policy", missing) or "error",
                 estimated_ops=tuple(r["key"] for r in rows if r.get("estimated")), ops=rows)


def latency_tables() -> pd.DataFrame:
    """The shipped latency tables, one row each (name, device, runtime, threads, space, input,
    entries, source, path): any ``name`` goes where a table goes (:func:`price`,
    ``latency.table`` of a config). ``nas latency tables`` prints the same."""
    import pandas as pd

    from nas.latency.registry import list_tables

    return pd.DataFrame(list_tables(), columns=["name", "device", "runtime", "threads", "space", "input",
                                                "entries", "source", "path"])
