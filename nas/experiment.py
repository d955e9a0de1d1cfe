"""An experiment from start to finish, as ``nas search CONFIG`` runs it: the search
(:mod:`nas.search.runner`), then the report of the finished study (:mod:`nas.report`).

The two halves do not know each other: the search never imports the report, and the report
reads a finished study without the controller. This module composes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nas.report import write_report
from nas.search.runner import run_search

if TYPE_CHECKING:
    from nas.config import ExperimentConfig
    from nas.search.controller import RunSummary


def run_experiment(config: ExperimentConfig, **options: Any) -> RunSummary:
    """Run (or resume) the experiment's search, then write its report (trials.csv,
    pareto.csv, the plots and report.html) into the run folder; returns the run's summary.
    ``options`` are :func:`nas.search.runner.run_search`'s (progress, storage_url, evaluator,
    latency_model, worker, log, force_new)."""
    summary = run_search(config, **options)
    write_report(summary.study, config.output_dir())
    return summary
