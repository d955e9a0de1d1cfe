"""Search quality: NSGA-II, TPE and random search on one space, compared by the hypervolume
of (zero-cost proxy score, predicted latency) reached after N trials; plus the controller's
own overhead per trial. Prints JSON.

    python benchmarks/search_quality.py [--space hybrid] [--table latency_tables/...csv]
        [--trials 60] [--seeds 5] [--proxy naswot]

A zero-cost proxy stands in for accuracy so that the comparison runs in minutes; proxy
results are cached by architecture, so every sampler sees the same score for a network.
Hypervolumes use one normalisation for all runs: the score scaled to [0, 1] over every
network any run evaluated, the latency divided by the largest latency seen.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.config import parse_config  # noqa: E402
from nas.evaluate import make_evaluator  # noqa: E402
from nas.latency import load_latency_model  # noqa: E402
from nas.report import evaluated, trials_frame  # noqa: E402
from nas.search.pareto import hypervolume_2d  # noqa: E402
from nas.search.runner import run_experiment  # noqa: E402

SAMPLERS = ("nsga2", "tpe", "random")


class ConstantEvaluator:
    """No work at all: isolates the controller's own cost."""

    objective, budget_key = "accuracy", "constant"
    input_shape, classes = (28, 28, 1), 10

    def evaluate(self, spec):
        return {"accuracy": (int(spec.arch_id[:6], 16) % 1000) / 1000, "status": "ok"}


def default_table(space: str) -> str:
    found = sorted(glob.glob(str(ROOT / "latency_tables" / f"{space}-28x28x1-*.csv")))
    if not found:
        raise SystemExit(f"no latency table for {space} at 28x28x1 in latency_tables/; pass --table")
    return found[0]


def run_one(space, table_model, evaluator, sampler, seed, trials, folder, storage="memory", population=16):
    sampler_options = {"kind": sampler, "population_size": population, "n_startup_trials": 10}
    config = parse_config({"name": f"{sampler}-{seed}", "space": space, "latency": "given", "trials": trials,
                           "seed": seed, "sampler": sampler_options, "storage": storage,
                           "output": str(folder / f"{sampler}-{seed}")})
    summary = run_experiment(config, progress=False, evaluator=evaluator, latency_model=table_model,
                             log=lambda line: None)
    return summary


def normalised_hypervolume(points, score_range, latency_ref):
    lo, hi = score_range
    pts = [(1 - (s - lo) / (hi - lo), lat / latency_ref) for s, lat in points]
    return hypervolume_2d(pts, (1.0, 1.0))


def quality(args, table_model, folder) -> dict:
    evaluator = make_evaluator("proxy", proxies=(args.proxy,), objective=args.proxy, dataset="fashion-mnist",
                               cache_path=folder / "proxy_cache.jsonl", batch_size=64)
    runs = {}
    for sampler in SAMPLERS:
        for seed in range(args.seeds):
            study = run_one(args.space, table_model, evaluator, sampler, seed, args.trials, folder,
                            population=args.population_size).study
            frame = evaluated(trials_frame(study)).sort_values("number")
            runs[(sampler, seed)] = list(zip(frame["score"], frame["latency_ms"]))
    scores = [s for points in runs.values() for s, _ in points]
    latency_ref = max(lat for points in runs.values() for _, lat in points)
    score_range = (min(scores), max(scores))
    checkpoints = sorted({args.trials // 3, 2 * args.trials // 3, args.trials})
    result = {}
    for sampler in SAMPLERS:
        per_checkpoint = {}
        for n in checkpoints:
            values = [normalised_hypervolume(runs[(sampler, seed)][:n], score_range, latency_ref)
                      for seed in range(args.seeds)]
            per_checkpoint[n] = {"median": statistics.median(values), "values": values}
        result[sampler] = per_checkpoint
    ratios = {f"{s}/random": {n: result[s][n]["median"] / result["random"][n]["median"] for n in checkpoints}
              for s in ("nsga2", "tpe")}
    # The front of every network any run found: how much of the reachable hypervolume each
    # sampler gets (with this normalisation even a perfect sampler has a ceiling over random).
    best_known = normalised_hypervolume([p for points in runs.values() for p in points], score_range, latency_ref)
    return {"hypervolume": result, "ratios_vs_random": ratios, "checkpoints": checkpoints,
            "best_known_hypervolume": best_known,
            "share_of_best_known": {s: {n: result[s][n]["median"] / best_known for n in checkpoints}
                                    for s in SAMPLERS}}


def overhead(args, table_model, folder) -> dict:
    out = {}
    for storage in ("memory", f"sqlite:///{folder / 'overhead.db'}"):
        per_trial = []
        for sampler in ("nsga2", "tpe", "random"):
            summary = run_one(args.space, table_model, ConstantEvaluator(), sampler, 0, args.overhead_trials,
                              folder / "overhead", storage=storage)
            per_trial.append((sampler, 1000 * summary.controller_s / max(1, summary.completed)))
        out["sqlite" if storage.startswith("sqlite") else storage] = {s: round(ms, 2) for s, ms in per_trial}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="hybrid")
    parser.add_argument("--table", help="latency table (default: the space's table in latency_tables/)")
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--proxy", default="naswot")
    parser.add_argument("--population-size", type=int, default=16, help="NSGA-II population")
    parser.add_argument("--overhead-trials", type=int, default=100)
    args = parser.parse_args()
    table = args.table or default_table(args.space)
    table_model = load_latency_model(table)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report = {"space": args.space, "table": str(Path(table).relative_to(ROOT) if Path(table).is_absolute()
                                                      and ROOT in Path(table).parents else table),
                  "trials": args.trials, "seeds": args.seeds, "proxy": args.proxy,
                  "nsga2_population": args.population_size,
                  **quality(args, table_model, folder),
                  "controller_overhead_ms_per_trial": overhead(args, table_model, folder)}
    report["elapsed_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
