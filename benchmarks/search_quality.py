"""Search quality: NSGA-II (choosing among 4 or 8 children with a surrogate, and plain), TPE
and random search on one space, compared by the hypervolume of (zero-cost proxy score, predicted latency)
reached after N trials; plus the controller's own overhead per trial (the run's wall time minus
evaluation, in memory and on an SQLite file) next to what a bare Optuna loop over the same
parameters costs in memory, on Optuna's own SQLite storage and on ours. Prints JSON.

    python benchmarks/search_quality.py [--space hybrid] [--table latency_tables/...csv]
        [--trials 60] [--seeds 5] [--proxy naswot] [--overhead-only] [--overhead-repeats 3]

A zero-cost proxy stands in for accuracy so that the comparison runs in minutes; proxy
results are cached by architecture, so every sampler sees the same score for a network.
Hypervolumes use one normalisation for all runs: the score scaled to [0, 1] over every
network any run evaluated (and the baselines), the latency divided by the largest latency
seen, both minimised against the reference point (1, 1). Two figures per run:

- ``hypervolume``: the area the run's networks dominate. Most of it is dominated by any
  reasonable network: even the front of every network all runs found together is only a
  little above what random search reaches, so the ratios stay close to 1 by construction.
- ``improvement_over_baselines``: the area the run's networks dominate that the reference
  baselines (the quickstart's hand-designed networks, scored and priced the same way) do not:
  how much the search adds to what a user already has, where the samplers differ.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from default_tables import default_table  # noqa: E402

from nas.config import parse_config  # noqa: E402
from nas.evaluate import make_evaluator  # noqa: E402
from nas.experiment import run_experiment  # noqa: E402
from nas.latency import load_latency_model  # noqa: E402
from nas.ops import count_macs, resolve  # noqa: E402
from nas.report import evaluated, trials_frame  # noqa: E402
from nas.search.pareto import hypervolume_2d  # noqa: E402
from nas.search.study import make_storage  # noqa: E402
from nas.space import get_reference, get_space  # noqa: E402

# name -> sampler settings: NSGA-II as configured by default (choosing among its children with a
# surrogate, nas/search/preselect.py), with twice the children, and plain (one child per trial);
# TPE; random search
SAMPLERS = {"nsga2": {"kind": "nsga2"}, "nsga2_8_candidates": {"kind": "nsga2", "candidates": 8},
            "nsga2_plain": {"kind": "nsga2", "candidates": 1}, "tpe": {"kind": "tpe"}, "random": {"kind": "random"}}


class ConstantEvaluator:
    """No work at all: isolates the controller's own cost. The score is a hash of the
    architecture, which no surrogate can learn."""

    objective, budget_key = "accuracy", "constant"
    input_shape, classes = (28, 28, 1), 10

    def evaluate(self, spec):
        return {"accuracy": (int(spec.arch_id[:6], 16) % 1000) / 1000, "status": "ok"}


class CostEvaluator(ConstantEvaluator):
    """Almost no work, and a score that grows with log MACs (plus a little of the hash): the
    pre-selecting sampler's surrogate earns trust and compares all its children, its dearest
    path."""

    def evaluate(self, spec):
        noise = super().evaluate(spec)["accuracy"]
        return {"accuracy": math.log(count_macs(resolve(spec))) / 20 + 0.02 * noise, "status": "ok"}


def run_one(space, table_model, evaluator, sampler, seed, trials, folder, storage="memory", population=16,
            name=None):
    """One search; ``name`` (default sampler-seed) names its study and run folder."""
    name = name or f"{sampler}-{seed}"
    sampler_options = {**SAMPLERS[sampler], "population_size": population, "n_startup_trials": 10}
    config = parse_config({"name": name, "space": space, "latency": "given", "trials": trials,
                           "seed": seed, "sampler": sampler_options, "storage": storage,
                           "output": str(folder / name)})
    summary = run_experiment(config, progress=False, evaluator=evaluator, latency_model=table_model,
                             log=lambda line: None)
    return summary


def normalise(points, score_range, latency_ref) -> np.ndarray:
    """(score, latency) pairs as two minimised coordinates in [0, 1]."""
    lo, hi = score_range
    return np.array([(1 - (s - lo) / (hi - lo), lat / latency_ref) for s, lat in points], dtype=float).reshape(-1, 2)


def improvement_over(baselines: np.ndarray):
    """A measure: the hypervolume points add to the baselines' (both normalised, reference (1, 1))."""
    base = hypervolume_2d(baselines, (1.0, 1.0))
    return lambda points: hypervolume_2d(np.vstack([points, baselines]), (1.0, 1.0)) - base


def hypervolume_ratios(result: dict, checkpoints: list[int]) -> dict:
    return {f"{s}/random": {n: result[s][n]["median"] / result["random"][n]["median"] for n in checkpoints}
            for s in SAMPLERS if s != "random"}


def baseline_points(args, evaluator, table_model) -> dict[str, tuple[float, float]]:
    """(score, predicted latency) of each baseline at the benchmark's input shape."""
    points = {}
    for name in args.baselines:
        spec = get_reference(name, ConstantEvaluator.input_shape, ConstantEvaluator.classes)
        points[name] = (float(evaluator.evaluate(spec)[args.proxy]), float(table_model.predict(resolve(spec))))
    return points


def quality(args, table_model, folder) -> dict:
    evaluator = make_evaluator("proxy", proxies=(args.proxy,), objective=args.proxy, dataset="fashion-mnist",
                               cache_path=args.cache or folder / "proxy_cache.jsonl", batch_size=64)
    runs = {}
    for sampler in SAMPLERS:
        for seed in range(args.seeds):
            study = run_one(args.space, table_model, evaluator, sampler, seed, args.trials, folder,
                            population=args.population_size).study
            frame = evaluated(trials_frame(study)).sort_values("number")
            runs[(sampler, seed)] = list(zip(frame["score"], frame["latency_ms"]))
    if args.points:
        args.points.write_text(json.dumps({f"{s}-{seed}": pts for (s, seed), pts in runs.items()}))
    baselines = baseline_points(args, evaluator, table_model)
    every = [p for points in runs.values() for p in points] + list(baselines.values())
    score_range = (min(s for s, _ in every), max(s for s, _ in every))
    latency_ref = max(lat for _, lat in every)
    normalised = {key: normalise(points, score_range, latency_ref) for key, points in runs.items()}
    everything = np.concatenate(list(normalised.values()))
    base = normalise(list(baselines.values()), score_range, latency_ref)
    measures = {"hypervolume": lambda pts: hypervolume_2d(pts, (1.0, 1.0)),
                "improvement_over_baselines": improvement_over(base)}
    checkpoints = sorted({args.trials // 3, 2 * args.trials // 3, args.trials})
    report = {"checkpoints": checkpoints, "baselines": {name: {"score": s, "latency_ms": lat}
                                                        for name, (s, lat) in baselines.items()}}
    for name, measure in measures.items():
        result = {}
        for sampler in SAMPLERS:
            result[sampler] = {}
            for n in checkpoints:
                values = [measure(normalised[(sampler, seed)][:n]) for seed in range(args.seeds)]
                result[sampler][n] = {"median": statistics.median(values), "values": values}
        # The front of every network any run found: how much of the reachable figure each
        # sampler gets.
        best_known = measure(everything)
        report[name] = {"per_sampler": result, "ratios_vs_random": hypervolume_ratios(result, checkpoints),
                        "best_known": best_known,
                        "share_of_best_known": {s: {n: result[s][n]["median"] / best_known for n in checkpoints}
                                                for s in SAMPLERS}}
    return report


def overhead(args, table_model, folder) -> dict:
    """The controller's cost per trial (the run's wall time minus evaluation time), and beside
    it what Optuna alone costs for the same parameters: ask, one suggest per parameter, tell.
    Each figure is the median of ``--overhead-repeats`` runs on fresh storages, interleaved so
    that a noisy spell on a shared machine does not land on one figure only."""
    choices = get_space(args.space, ConstantEvaluator.input_shape, ConstantEvaluator.classes).parameters()
    runs: dict[str, dict[str, list[float]]] = {}
    for repeat in range(args.overhead_repeats):
        here = folder / f"overhead-{repeat}"
        for name, storage in {"memory": "memory", "sqlite": f"sqlite:///{here / 'overhead.db'}"}.items():
            # more children cost more only where the surrogate ranks them (otherwise the first that
            # passes is taken): that one is measured with a score the surrogate learns
            for sampler, evaluator in ([(s, ConstantEvaluator()) for s in SAMPLERS if s != "nsga2_8_candidates"]
                                       + [(s, CostEvaluator()) for s in ("nsga2", "nsga2_8_candidates")]):
                key = f"{sampler}_surrogate_trusted" if isinstance(evaluator, CostEvaluator) else sampler
                summary = run_one(args.space, table_model, evaluator, sampler, 0, args.overhead_trials,
                                  here, storage=storage, name=key)  # one study per figure in the file
                runs.setdefault(name, {}).setdefault(key, []).append(1000 * summary.controller_s / summary.completed)
        bare = runs.setdefault("optuna_alone_random_sampler", {})
        for name, url, plain in (("memory", "memory", False),
                                 ("sqlite_optuna_storage", f"sqlite:///{here / 'bare_optuna.db'}", True),
                                 ("sqlite_our_storage", f"sqlite:///{here / 'bare_ours.db'}", False)):
            bare.setdefault(name, []).append(optuna_alone(choices, url, args.overhead_trials, plain))
    out = {name: {key: round(statistics.median(values), 2) for key, values in figures.items()}
           for name, figures in runs.items()}
    out["runs"] = {name: {key: [round(v, 2) for v in values] for key, values in figures.items()}
                   for name, figures in runs.items()}
    return out


def optuna_alone(choices: dict, url: str, trials: int, plain_optuna: bool) -> float:
    """Milliseconds per trial of a bare Optuna loop (random sampler): ask, one suggest per
    parameter of the space, tell. ``plain_optuna``: Optuna's own RDB storage (on a file in the
    same WAL mode); otherwise the storage the controller opens (make_storage: the same
    RDBStorage with heartbeats and relaxed syncing)."""
    storage = make_storage(url)  # for a file: creates it in WAL mode
    if plain_optuna:
        storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0),
                                directions=["maximize", "minimize"])
    start = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        for name, options in choices.items():
            trial.suggest_categorical(name, options)
        study.tell(trial, [0.5, 1.0])
    return 1000 * (time.perf_counter() - start) / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="hybrid")
    parser.add_argument("--table", help="latency table (default: the space's table in latency_tables/)")
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--proxy", default="naswot")
    parser.add_argument("--population-size", type=int, default=16, help="NSGA-II population")
    parser.add_argument("--overhead-trials", type=int, default=100)
    parser.add_argument("--overhead-repeats", type=int, default=3,
                        help="runs per overhead figure (median); 0 skips the overhead")
    parser.add_argument("--overhead-only", action="store_true", help="measure only the controller's overhead")
    parser.add_argument("--baselines", nargs="+", default=["mobilenet_v2_0.35", "shufflenet_v2_x0.5",
                                                                "mobilenet_v1_0.25"],
                        help="reference networks whose front the search should improve on (the quickstart's)")
    parser.add_argument("--cache", type=Path, help="proxy score cache to reuse between runs (JSON lines)")
    parser.add_argument("--points", type=Path, help="also write every run's (score, latency) points to this JSON file")
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
                  **({} if args.overhead_only else quality(args, table_model, folder))}
        if args.overhead_repeats > 0:
            report["controller_overhead_ms_per_trial"] = overhead(args, table_model, folder)
    report["elapsed_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
