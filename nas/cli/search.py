"""``nas search``, ``nas report`` and ``nas pareto``."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli import UserError
from nas.config import ConfigError, load_config, override
from nas.report import ReportError, format_pareto, open_run, pareto_frame, score_name, trials_frame, write_report
from nas.search.study import StorageError

MAX_WORKERS = 1000  # worker k's sampler seed is the config's plus 1000 k


def worker_index(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, {MAX_WORKERS - 1}], got {text!r}") from None
    if not 0 <= value < MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, {MAX_WORKERS - 1}], got {text!r}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser("search", help="run (or resume) the search experiment of a YAML config")
    p.add_argument("config", help="experiment config, e.g. experiments/quickstart.yaml")
    p.add_argument("--output", help="run folder (default: the config's, or runs/<name>)")
    p.add_argument("--n-trials", type=int, help="number of completed trials to reach (overrides the config)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--storage", help="Optuna storage URL (default: SQLite in the run folder)")
    p.add_argument("--study", help="study name (default: the experiment name)")
    p.add_argument("--seed", type=int)
    p.add_argument("--worker", type=worker_index,
                   help=f"worker index 0-{MAX_WORKERS - 1} when several processes share a study (offsets the seed)")
    p.add_argument("--force-new", action="store_true",
                   help="if the stored study was made with another setup (evaluator, data, space, latency table, "
                        "objective), start a new study beside it instead of refusing; nothing is deleted")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_search)

    p = subparsers.add_parser("report", help="write trials.csv, pareto.csv, plots and report.html for a run")
    p.add_argument("run", nargs="?", help="run folder")
    p.add_argument("--storage", help="storage URL (instead of, or to override, the run folder's)")
    p.add_argument("--study", help="study name")
    p.add_argument("-o", "--output", help="where to write (default: the run folder)")
    p.set_defaults(handler=cmd_report)

    p = subparsers.add_parser("pareto", help="print the Pareto table of a run")
    p.add_argument("run", nargs="?", help="run folder")
    p.add_argument("--storage")
    p.add_argument("--study")
    p.set_defaults(handler=cmd_pareto)


def cmd_search(args) -> int:
    from nas.experiment import run_experiment
    from nas.search.runner import ExperimentError

    try:
        config = override(load_config(args.config), output=args.output, trials=args.n_trials,
                          timeout_s=args.timeout, storage=args.storage, study=args.study, seed=args.seed)
        summary = run_experiment(config, progress=not args.no_progress, worker=args.worker,
                                 force_new=args.force_new)
    except (ConfigError, ExperimentError, StorageError, ReportError) as exc:
        raise UserError(str(exc)) from None
    folder = config.output_dir()
    print(f"{summary.completed} trials completed ({summary.evaluated} evaluated this run, "
          f"{summary.duplicates} duplicates, {summary.infeasible} infeasible, {summary.failed} failed) "
          f"in {summary.elapsed_s:.0f} s")
    for note in summary.notes:
        print(note)
    study = open_run(folder, storage=config.storage)
    print(format_pareto(pareto_frame(trials_frame(study)), score_name(study)))
    print(f"report: {folder / 'report.html'}")
    if summary.interrupted:
        return 130
    return 1 if summary.gave_up else 0


def _study(args):
    try:
        return open_run(args.run, storage=args.storage, study=args.study)
    except (ReportError, StorageError) as exc:
        raise UserError(str(exc)) from None


def cmd_report(args) -> int:
    study = _study(args)
    folder = Path(args.output or args.run or ".")
    paths = write_report(study, folder)
    for path in paths.values():
        print(path)
    return 0


def cmd_pareto(args) -> int:
    study = _study(args)
    print(format_pareto(pareto_frame(trials_frame(study)), score_name(study)))
    return 0
