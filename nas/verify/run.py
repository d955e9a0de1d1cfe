"""Verify a run: choose, retrain, test, summarise, record."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.data import Dataset
from nas.folders import unwritable_reason, written_whole
from nas.verify.jobs import Job, cache_of, run_jobs
from nas.verify.select import Candidate, read_run
from nas.verify.settings import DEFAULTS, RESULT_FILE, VerifyError, check_setting
from nas.verify.summary import summarize


def _check_fits(candidates: list[Candidate], dataset: Dataset) -> None:
    for candidate in candidates:
        spec = candidate.spec
        if spec.input != dataset.input_shape or spec.classes != dataset.classes:
            raise VerifyError(f"{candidate.role} {candidate.name} is for input {'x'.join(map(str, spec.input))} with "
                              f"{spec.classes} classes, but {dataset.name} is "
                              f"{'x'.join(map(str, dataset.input_shape))} with {dataset.classes}")


def verify_run(folder: str | Path, *, picks: int = DEFAULTS["picks"], epochs: int = DEFAULTS["epochs"],
               seeds: int = DEFAULTS["seeds"], dataset: Dataset | None = None, progress: bool = True,
               trainer: Callable[..., dict[str, Any]] | None = None, report: bool = True,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """Retrain ``picks`` networks spread along the run's Pareto front and the run's baselines,
    each with seeds 0..``seeds``-1, for ``epochs`` epochs on the whole training set with the
    run's training settings; test them; write ``verify.json`` and refresh ``report.html``.
    ``dataset`` overrides the run's dataset and ``trainer`` the training function (tests);
    ``report`` False leaves report.html as it is (``nas report RUN`` refreshes it later).
    Returns the verdict (see docs/verify.md).

    Raises:
        VerifyError: before any training: a setting out of range, a folder that is not a run,
            an empty front, a dataset that cannot be loaded, or a folder that cannot be written.
    """
    from nas.export.retrain import ExportError, load_run_dataset, retrain_budget

    picks, epochs, seeds = (check_setting(name, value) for name, value in
                            (("picks", picks), ("epochs", epochs), ("seeds", seeds)))
    networks = read_run(folder, picks)
    folder = Path(folder)
    try:
        budgets = [retrain_budget(networks.config, epochs, seed) for seed in range(seeds)]
        dataset = dataset or load_run_dataset(networks.config, folder)
    except ExportError as exc:
        raise VerifyError(str(exc)) from None
    candidates = networks.picks + networks.baselines
    _check_fits(candidates, dataset)
    reason = unwritable_reason(folder)
    if reason:
        raise VerifyError(f"run folder {str(folder)!r} is not writable: {reason}")
    jobs = [Job(candidate, seed, budgets[seed]) for candidate in candidates for seed in range(seeds)]
    log(f"verifying {len(networks.picks)} Pareto networks and {len(networks.baselines)} baselines, {seeds} seed(s) "
        f"each, {epochs} epoch(s) on {len(dataset.train) + len(dataset.val)} training images, tested on "
        f"{len(dataset.test)} test images")
    start = time.perf_counter()
    results = run_jobs(jobs, dataset, cache_of(folder), progress=progress, trainer=trainer)
    verdict = summarize(networks.picks, networks.baselines, list(range(seeds)), results)
    verdict["settings"] = {"picks": picks, "epochs": epochs, "seeds": seeds, "dataset": dataset.key,
                           "train_images": len(dataset.train) + len(dataset.val), "test_images": len(dataset.test),
                           "budget": {k: v for k, v in budgets[0].to_dict().items() if k != "seed"},
                           "seconds_this_call": round(time.perf_counter() - start, 1),
                           "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with written_whole(folder / RESULT_FILE) as path:
        path.write_text(json.dumps(verdict, indent=2) + "\n")
    if report:
        from nas.report import write_report

        write_report(networks.study, folder)
    return verdict
