"""Controller throughput with 1, 2 and 4 worker processes sharing one study, on SQLite,
Optuna's journal file and PostgreSQL, with the tiny evaluator. Prints JSON.

    python benchmarks/scale.py [--trials 48] [--workers 1 2 4] [--postgres URL]
    python benchmarks/scale.py --overhead-before TREE [--trials 40] [--repeats 5] [--postgres URL]

Each point starts N real `nas search` processes on a fresh study and times them until all
have exited; trials/s = completed trials / that wall time. A worker's fixed cost (Python
and torch start-up, loading the table, writing the report) is measured on its own as
`startup_s` (a run whose trials are already complete) and reported beside it, together with
the throughput once that fixed cost is taken out. PostgreSQL comes from --postgres, from
NAS_TEST_POSTGRES_URL, or from tools/postgres-for-tests.sh.

With --overhead-before, the controller's own cost per trial instead (RunSummary.controller_s
divided by the completed trials: sampling, storage, deduplication, the loop's checks; the
evaluator is instant and its time is not counted anyway) of this tree and of another checkout
of the project (``git worktree add DIR COMMIT``), side by side: each run is one
process with PYTHONPATH set to its tree, before and after alternate, and the median of
--repeats runs is reported per storage and sampler.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from default_tables import default_table

ROOT = Path(__file__).resolve().parents[1]
NAS = [sys.executable, "-m", "nas.cli"]


def postgres_url(given: str | None) -> str | None:
    if given or os.environ.get("NAS_TEST_POSTGRES_URL"):
        return given or os.environ["NAS_TEST_POSTGRES_URL"]
    script = ROOT / "tools" / "postgres-for-tests.sh"
    out = subprocess.run([str(script)], capture_output=True, text=True)
    return out.stdout.strip() or None


def write_config(folder: Path, table: str, trials: int) -> Path:
    config = {"name": "scale", "space": "hybrid", "dataset": "synthetic", "evaluator": {"kind": "tiny"},
              "latency": table, "trials": trials, "sampler": {"kind": "random"}, "heartbeat_interval_s": 2,
              "grace_period_s": 6}
    path = folder / "scale.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_workers(config: Path, storage: str, study: str, workers: int, folder: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    processes = [subprocess.Popen([*NAS, "search", str(config), "--storage", storage, "--study", study,
                                   "--worker", str(i), "--no-progress", "--output", str(folder / f"w{i}")],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for i in range(workers)]
    for p in processes:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker failed: {err[-2000:]}")
    return time.perf_counter() - start


def completed(storage: str, study: str) -> int:
    import optuna

    from nas.search.study import make_storage

    trials = optuna.load_study(study_name=study, storage=make_storage(storage)).get_trials(deepcopy=False)
    return sum(t.state.name == "COMPLETE" for t in trials)


# One search in one process, with the project found on PYTHONPATH; prints the controller's
# seconds and the completed trials as JSON. Written against run_experiment's public arguments,
# which both trees compared share.
OVERHEAD_RUN = """
import hashlib, json, sys
# Only the tree on PYTHONPATH: the project's editable install would otherwise answer for any
# module that tree lacks, with the other tree's file.
sys.meta_path[:] = [finder for finder in sys.meta_path if "Editable" not in type(finder).__name__
                    and "Editable" not in getattr(finder, "__name__", "")]
from nas.config import parse_config
try:
    from nas.experiment import run_experiment
except ImportError:  # a tree from before nas.experiment, whose search wrote the report itself
    from nas.search.runner import run_experiment

class InstantEvaluator:
    objective, budget_key = "accuracy", "instant"
    input_shape, classes = (28, 28, 1), 10

    def evaluate(self, spec):
        return {"accuracy": int(hashlib.sha256(spec.arch_id.encode()).hexdigest()[:8], 16) / 16**8, "status": "ok"}

storage, study, trials, sampler, table, output = sys.argv[1:7]
config = parse_config({"name": study, "space": "hybrid", "latency": table, "trials": int(trials), "seed": 0,
                       "sampler": {"kind": sampler}, "storage": storage, "output": output})
summary = run_experiment(config, progress=False, evaluator=InstantEvaluator(), log=lambda line: None)
print(json.dumps({"controller_s": summary.controller_s, "completed": summary.completed}))
"""


def overhead_run(tree: Path, storage: str, study: str, trials: int, sampler: str, table: str, output: Path) -> float:
    """Milliseconds of controller time per completed trial of one search run by ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", OVERHEAD_RUN, storage, study, str(trials), sampler, table,
                          str(output)], cwd=tree, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"run of {tree} failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return 1000 * result["controller_s"] / result["completed"]


def overhead(before: Path, after: Path, trials: int, repeats: int, samplers: list[str], table: str,
             pg: str | None, only: list[str]) -> dict:
    trees = {"before": before.resolve(), "after": after.resolve()}
    runs: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        storages = {"sqlite": lambda s: f"sqlite:///{folder / s}.db", "journal": lambda s: f"journal:{folder / s}.log"}
        if pg:
            storages["postgresql"] = lambda s: pg
        for name, make_url in storages.items():
            if name not in only:
                continue
            for sampler in samplers:
                for repeat in range(repeats):
                    for label, tree in trees.items():  # alternating: drift in the machine's load hits both
                        study = f"overhead-{label}-{name}-{sampler}-{repeat}-{uuid.uuid4().hex[:6]}"
                        ms = overhead_run(tree, make_url(study), study, trials, sampler, table, folder / study)
                        runs.setdefault(name, {}).setdefault(sampler, {}).setdefault(label, []).append(ms)
    medians = {}
    for name, by_sampler in runs.items():
        for sampler, by_tree in by_sampler.items():
            before_ms, after_ms = (statistics.median(by_tree[label]) for label in ("before", "after"))
            medians.setdefault(name, {})[sampler] = {
                "before_ms": round(before_ms, 1), "after_ms": round(after_ms, 1),
                "after_minus_before_ms": round(after_ms - before_ms, 1),
                "runs_ms": {label: [round(v, 1) for v in values] for label, values in by_tree.items()}}
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--postgres")
    parser.add_argument("--table", help="hybrid 28x28x1 latency table (default: the one in latency_tables/)")
    parser.add_argument("--overhead-before", type=Path, metavar="TREE",
                        help="measure the controller's cost per trial of this tree and of another checkout")
    parser.add_argument("--overhead-after", type=Path, metavar="TREE", default=ROOT,
                        help="the checkout compared with --overhead-before (default: this one; a worktree of a "
                             "commit keeps the figures from following edits in progress)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per point with --overhead-before")
    parser.add_argument("--samplers", nargs="+", default=["random", "nsga2"], help="with --overhead-before")
    parser.add_argument("--storages", nargs="+", default=["sqlite", "journal", "postgresql"],
                        choices=["sqlite", "journal", "postgresql"], help="with --overhead-before")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    table = args.table or default_table("hybrid")
    pg = postgres_url(args.postgres)
    if args.overhead_before is not None:
        for option, tree in (("--overhead-before", args.overhead_before), ("--overhead-after", args.overhead_after)):
            if not (tree / "nas" / "search" / "controller.py").is_file():
                raise SystemExit(f"{option} {str(tree)!r} is not a checkout of this project "
                                 f"(no nas/search/controller.py there)")
        from nas.search.study import redact

        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        figures = overhead(args.overhead_before, args.overhead_after, args.trials, args.repeats, args.samplers,
                           table, pg, args.storages)
        print(json.dumps({"controller_ms_per_trial": figures,
                          "trees": {"before": str(args.overhead_before), "after": str(args.overhead_after)},
                          "trials_per_run": args.trials, "repeats": args.repeats, "space": "hybrid",
                          "evaluator": "instant (its time is not the controller's anyway)",
                          "machine": machine,
                          "postgresql": redact(pg) if pg else "not available"}, indent=2))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_config(folder, table, args.trials)
        storages = {"sqlite": lambda s: f"sqlite:///{folder / s}.db", "journal": lambda s: f"journal:{folder / s}.log"}
        if pg:
            storages["postgresql"] = lambda s: pg
        for name, make_url in storages.items():
            results[name] = {}
            for workers in args.workers:
                study = f"scale-{name}-{workers}-{uuid.uuid4().hex[:6]}"
                url = make_url(study)
                wall = run_workers(config, url, study, workers, folder / study)
                done = completed(url, study)
                startup = run_workers(config, url, study, 1, folder / f"{study}-again")  # nothing left to do
                busy = max(wall - startup, 1e-9)
                results[name][str(workers)] = {"trials": done, "wall_s": round(wall, 2),
                                               "trials_per_s": round(done / wall, 2),
                                               "startup_s": round(startup, 2),
                                               "trials_per_s_after_startup": round(done / busy, 2)}
    from nas.search.study import redact

    print(json.dumps({"trials_per_point": args.trials, "evaluator": "tiny", "space": "hybrid",
                      "postgresql": redact(pg) if pg else "not available", "results": results}, indent=2))


if __name__ == "__main__":
    main()
