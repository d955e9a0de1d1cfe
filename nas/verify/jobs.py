"""Retrain the chosen networks from scratch, several seeds each, and test them.

Each (network, seed, budget) is one job: the network is trained on the whole training set
(the search's train and validation parts) with the run's training settings for the given
epochs, then tested on the test split, which the search never saw. A finished job is
appended to ``verify_cache.jsonl`` in the run folder as one whole line, so a killed
verification loses at most the job in progress and a rerun skips every finished one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nas.data import Dataset
from nas.evaluate import ResultCache
from nas.ops import count_macs, resolve
from nas.spec import ArchSpec
from nas.train import Budget
from nas.verify.select import Candidate
from nas.verify.settings import CACHE_FILE


@dataclass(frozen=True)
class Job:
    candidate: Candidate
    seed: int
    budget: Budget


def budget_key(budget: Budget, dataset: Dataset) -> str:
    """What a cached result depends on besides the architecture: the data (its name, split
    and size) and the training budget (epochs, seed and every setting that changes the
    result)."""
    size = f"{len(dataset.train) + len(dataset.val)}+{len(dataset.test)}"
    return f"verify|{dataset.key}:{size}|{budget.key}"


def train_and_test(spec: ArchSpec, dataset: Dataset, budget: Budget,
                   on_epoch: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train ``spec`` from scratch for ``budget`` on the whole training set of ``dataset`` and
    test it. A diverged run scores 0 (as in the search) and says so in ``status``."""
    from nas.export.retrain import full_training_set
    from nas.train import train

    result = train(spec, full_training_set(dataset), budget, test=True, on_epoch=on_epoch)
    ok = result.status != "diverged" and result.test_accuracy is not None
    return {"test_acc": result.test_accuracy if ok else 0.0, "test_loss": result.test_loss if ok else None,
            "status": result.status, "reason": result.reason, "train_time_s": result.train_time_s,
            "epochs_done": result.epochs_done}


class TimeLeft:
    """The time left, estimated honestly for networks of very different sizes.

    An epoch of an architecture already timed costs what it cost (its other seeds train the
    same network on the same data). An epoch of one not timed yet is priced by a cost model,
    ``multiply-accumulates + OVERHEAD_MACS``, at the seconds per unit of that model observed so
    far. The overhead stands for what does not scale with MACs (reading and normalising the
    batches, depthwise and elementwise kernels that are memory bound); 15 MMACs fits the
    trainings timed on this project's 2-core machine (a 2.9-MMAC MobileNetV1 epoch costs
    about 40% of a 22.6-MMAC one, not 13%).
    """

    OVERHEAD_MACS = 15e6

    def __init__(self, jobs: list[Job]):
        self.jobs = list(jobs)
        self.epochs_left = {id(job): job.budget.epochs for job in self.jobs}
        self.weight = {job.candidate.arch_id: count_macs(resolve(job.candidate.spec)) + self.OVERHEAD_MACS
                       for job in self.jobs}
        self.timed: dict[str, list[float]] = {}  # by architecture: [seconds, epochs] measured
        self.seconds = 0.0
        self.work = 0.0

    def advance(self, job: Job, epochs: int, seconds: float) -> None:
        """``epochs`` more epochs of ``job`` took ``seconds`` (0 epochs: the testing after the
        last epoch, a cost every training pays)."""
        self.epochs_left[id(job)] -= epochs
        timed = self.timed.setdefault(job.candidate.arch_id, [0.0, 0])
        timed[0] += seconds
        timed[1] += epochs
        self.seconds += seconds
        self.work += epochs * self.weight[job.candidate.arch_id]

    def finish(self, job: Job) -> None:
        """``job`` ended early (diverged): its remaining epochs will not be trained."""
        self.epochs_left[id(job)] = 0

    def seconds_left(self) -> float | None:
        """None until the first epoch has been timed."""
        if self.work <= 0:
            return None
        rate = self.seconds / self.work
        total = 0.0
        for job in self.jobs:
            arch = job.candidate.arch_id
            seconds, epochs = self.timed.get(arch, (0.0, 0))
            per_epoch = seconds / epochs if epochs else self.weight[arch] * rate
            total += self.epochs_left[id(job)] * per_epoch
        return total


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def run_jobs(jobs: list[Job], dataset: Dataset, cache: ResultCache, *, progress: bool = True,
             trainer: Callable[..., dict[str, Any]] | None = None) -> dict[tuple[str, int], dict]:
    """Run every job not in ``cache`` and return every job's result by (arch_id, seed). Jobs
    of one architecture listed twice (a baseline that is also a pick) run once."""
    trainer = trainer or train_and_test
    results: dict[tuple[str, int], dict] = {}
    todo: list[Job] = []
    seen: set[tuple[str, int]] = set()
    for job in jobs:
        identity = (job.candidate.arch_id, job.seed)
        if identity in seen:
            continue
        seen.add(identity)
        cached = cache.get(job.candidate.arch_id, budget_key(job.budget, dataset))
        if cached is not None:
            results[identity] = cached
        else:
            todo.append(job)
    left = TimeLeft(todo)
    bar = tqdm(total=sum(j.budget.epochs for j in todo), unit="epoch", disable=None if progress else True,
               dynamic_ncols=True, bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} epochs "
                                              "[{elapsed} spent{postfix} left]")
    bar.set_postfix_str(format_duration(left.seconds_left()))
    try:
        for number, job in enumerate(todo, 1):
            bar.set_description(f"{job.candidate.role} {job.candidate.name} seed {job.seed} ({number}/{len(todo)})")
            clock = [time.perf_counter()]

            def on_epoch(summary: dict, job: Job = job, clock: list = clock) -> None:
                now = time.perf_counter()
                left.advance(job, 1, now - clock[0])
                clock[0] = now
                bar.update(1)
                bar.set_postfix_str(format_duration(left.seconds_left()))

            epochs_before = bar.n
            metrics = trainer(job.candidate.spec, dataset, job.budget, on_epoch=on_epoch)
            # an early stop (divergence) skips the job's remaining epochs
            remaining = job.budget.epochs - (bar.n - epochs_before)
            if remaining > 0:
                left.finish(job)
                bar.update(remaining)
            left.advance(job, 0, time.perf_counter() - clock[0])
            metrics = {**metrics, "seed": job.seed, "epochs": job.budget.epochs}
            cache.put(job.candidate.arch_id, budget_key(job.budget, dataset), metrics, job.candidate.spec.to_string())
            results[(job.candidate.arch_id, job.seed)] = metrics
            bar.set_postfix_str(format_duration(left.seconds_left()))
    finally:
        bar.close()
    return results


def cache_of(folder: Path) -> ResultCache:
    """The run folder's cache of finished jobs."""
    return ResultCache(Path(folder) / CACHE_FILE)
