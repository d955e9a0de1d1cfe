"""Does the search's win survive full training? The quickstart's search run two ways at the same
wall-clock budget, both fronts then verified by retraining. Prints JSON.

    python benchmarks/search_truth.py [--budget-s 660] [--output DIR] [--seeds 3] [--picks 3]
        [--epochs 1] [--rungs 1,3,9] [--keep 0.33] [--quick]

The two ways (experiments/quickstart.yaml, its time limit replaced by ``--budget-s`` and its
trial count lifted, so that time alone stops both):

- ``one_epoch``: today's evaluator, every candidate trained 1 epoch on its 5% of the data;
- ``halving``: multi-objective successive halving (nas/search/halving.py), the same training
  options without ``epochs``, judged at ``--rungs`` epochs, the best ``--keep`` going on.

Each run's front is then verified as ``nas verify`` does (nas/verify/): ``--picks`` networks
spread along the front and the run's baselines, each retrained from scratch with ``--seeds``
seeds for ``--epochs`` epochs on the whole training set and tested on the test split, which
the search never saw. The baselines are the same networks trained the same way in both runs,
so the second run's verification reuses the first's results for them (the verify cache is
keyed by architecture, seed and budget).

Per way: ``kendall_tau`` (search score vs mean test accuracy over the verified networks, from
``nas verify``), ``best_speedup`` (the largest latency ratio of the best baseline, the one with
the highest mean test accuracy, over a verified pick whose mean test accuracy is at least
that baseline's; null when no pick reaches it), ``verified_hypervolume`` (of the picks'
(1 - mean test accuracy, latency / L), L the largest latency among every verified network of
both ways, against (1, 1)), the search's and the verification's wall-clock, and how many
candidates reached each rung. The issue's targets: halving has the higher tau and the higher
verified hypervolume, and a verified pick is at least 1.5x faster than the best baseline.

Rerun the same command after a kill: a way whose search ended goes straight on verifying
(its search is written down in the way's folder, and verified trainings are cached); a search
cut off half-way is refused (its folder must go), since resuming it would search past the
budget.

A timeout stops starting trials, and a halving trial running when it passes goes on to no
further rung: each way may pass the budget by up to one trial's (one rung's) training. The
baselines are trained before the timed search (to the top rung under halving): they are not
in the budget but are in the search's wall-clock, which the JSON reports as spent. The full
run takes about 1.5 hours on 2 quiet cores (two searches of ``--budget-s`` each, then about
(picks + baselines) x seeds full-data epochs per way).
``--quick`` checks the pipeline in a few minutes: generated data, MobileNetV1 at width 0.25
(one baseline), 60 s per search, rungs 1,2, 2 picks, 2 seeds; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.config import ExperimentConfig, load_config, parse_config  # noqa: E402
from nas.search.pareto import accuracy_latency_hypervolume  # noqa: E402
from nas.verify.settings import CACHE_FILE  # noqa: E402

QUICKSTART = ROOT / "experiments" / "quickstart.yaml"
WAYS = ("one_epoch", "halving")
TARGET_SPEEDUP = 1.5
SEARCH_RECORD = "search_truth_search.json"  # what a way's finished search did (see search_record)


def way_configs(base: ExperimentConfig, output: Path, budget_s: float, rungs: list[int], keep: float,
                quick: bool) -> dict[str, ExperimentConfig]:
    """The two experiments: the same search, one scoring each candidate after 1 epoch, one
    with successive halving; each in its own folder and study, stopped by time alone."""
    data = base.to_dict()
    data.update(timeout_s=budget_s, trials=None, storage=None, study=None)
    options = dict(data["evaluator"]["options"])
    if quick:  # generated data (540 training images, all used) and small networks: a check of the pipeline
        data["dataset"] = {"name": "synthetic"}
        data["space"] = {"name": "mobilenet_v1", "options": {"width_mult": 0.25}}
        data["baselines"] = ["mobilenet_v1_0.25"]
        options["fraction"] = 1.0
    configs = {}
    for way in WAYS:
        way_options = dict(options)
        schedule = None
        if way == "halving":
            way_options.pop("epochs", None)  # the rungs set the epochs
            schedule = {"rungs": rungs, "keep": keep, "unit": "epochs"}
        else:
            way_options["epochs"] = 1
        configs[way] = parse_config({**data, "name": f"{base.name}-{way}", "output": str(output / way),
                                     "evaluator": {"kind": "train", "options": way_options, "schedule": schedule}},
                                    f"benchmark way {way}")
    return configs


def rung_counts(study) -> dict[str, int] | None:
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "score" in t.user_attrs]
    if not any("rung" in t.user_attrs for t in done):
        return None
    counts: dict[str, int] = {}
    for t in done:
        key = f"rung {t.user_attrs['rung']}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def best_speedup(verdict: dict) -> dict | None:
    """The best baseline (highest mean test accuracy) and the fastest pick at least as accurate."""
    baselines = [b for b in verdict["baselines"] if b["latency_ms"] is not None]
    if not baselines:
        return None
    best = max(baselines, key=lambda b: b["test_acc_mean"])
    matching = [p for p in verdict["picks"] if p["latency_ms"] and p["test_acc_mean"] >= best["test_acc_mean"]]
    if not matching:
        return {"baseline": best["name"], "baseline_test_acc_mean": best["test_acc_mean"], "speedup": None}
    pick = min(matching, key=lambda p: p["latency_ms"])
    return {"baseline": best["name"], "baseline_test_acc_mean": best["test_acc_mean"],
            "baseline_latency_ms": best["latency_ms"], "pick": pick["arch_id"], "pick_trial": pick.get("trial"),
            "pick_test_acc_mean": pick["test_acc_mean"], "pick_latency_ms": pick["latency_ms"],
            "speedup": best["latency_ms"] / pick["latency_ms"]}


def run_way(config: ExperimentConfig, args, log) -> dict:
    from nas.verify.run import verify_run
    from nas.verify.settings import VerifyError

    searched = search_record(config, args, log)
    if args.shared_cache is not None and args.shared_cache.is_file():  # the baselines, verified by the other way
        target = config.output_dir() / CACHE_FILE
        if not target.exists():
            shutil.copyfile(args.shared_cache, target)
    start = time.perf_counter()
    verdict, error = None, None
    try:
        verdict = verify_run(config.output_dir(), picks=args.picks, epochs=args.epochs, seeds=args.seeds,
                             progress=not args.quiet, log=log)
    except VerifyError as exc:  # say so in the JSON (a budget too small to complete a searched network)
        error = str(exc)
    verify_s = time.perf_counter() - start
    return {"config": config, "verdict": verdict, "error": error, **searched, "verify_s": round(verify_s, 1)}


def search_record(config: ExperimentConfig, args, log) -> dict:
    """Run the way's search, or read what it did from its folder: the search is written down
    when it ends, so that a rerun after a kill (the verification takes hours) goes straight on
    verifying, whose results are cached, instead of searching again past the budget."""
    from nas.experiment import run_experiment
    from nas.folders import written_whole

    record = config.output_dir() / SEARCH_RECORD
    if record.is_file():
        done = json.loads(record.read_text())
        if done.get("budget_s") == config.timeout_s:
            log(f"search already done ({record}): verifying")
            return {k: done[k] for k in ("completed", "evaluated", "rungs", "search_s")}
        sys.exit(f"{record} holds a search with a budget of {done.get('budget_s')} s, not {config.timeout_s} s: "
                 f"use another --output")
    if config.output_dir().is_dir() and any(config.output_dir().iterdir()):
        sys.exit(f"{config.output_dir()} holds a search that was cut off before it ended; resuming it would "
                 f"search past the budget: remove that folder to search again")
    start = time.perf_counter()
    summary = run_experiment(config, progress=not args.quiet, log=log)
    done = {"budget_s": config.timeout_s, "completed": summary.completed, "evaluated": summary.evaluated,
            "rungs": rung_counts(summary.study), "search_s": round(time.perf_counter() - start, 1)}
    with written_whole(record) as temporary:
        temporary.write_text(json.dumps(done))
    return {k: v for k, v in done.items() if k != "budget_s"}


def summarise(results: dict[str, dict]) -> dict:
    verdicts = [r["verdict"] for r in results.values() if r["verdict"] is not None]
    everything = [e for v in verdicts for e in v["picks"] + v["baselines"]]
    latencies = [e["latency_ms"] for e in everything if e["latency_ms"] is not None]
    reference_ms = max(latencies) if latencies else None
    out = {}
    for way, r in results.items():
        if r["verdict"] is None:
            out[way] = {"kendall_tau": None, "best_speedup": None, "verified_hypervolume": None,
                        "search_wall_s": r["search_s"], "verify_wall_s": r["verify_s"], "candidates": r["completed"],
                        "evaluated_this_run": r["evaluated"], "rungs": r["rungs"], "error": r["error"]}
            continue
        picks = r["verdict"]["picks"]
        hypervolume = accuracy_latency_hypervolume([p["test_acc_mean"] for p in picks],
                                                   [p["latency_ms"] for p in picks], reference_ms)
        out[way] = {"kendall_tau": r["verdict"]["kendall_tau_search_vs_final"],
                    "best_speedup": best_speedup(r["verdict"]), "verified_hypervolume": hypervolume,
                    "search_wall_s": r["search_s"], "verify_wall_s": r["verify_s"],
                    "candidates": r["completed"], "evaluated_this_run": r["evaluated"], "rungs": r["rungs"],
                    "picks": [{k: p.get(k) for k in ("trial", "arch_id", "latency_ms", "search_score",
                                                      "test_acc_mean", "test_acc_std")} for p in picks],
                    "baselines": [{k: b.get(k) for k in ("name", "latency_ms", "search_score", "test_acc_mean",
                                                          "test_acc_std")} for b in r["verdict"]["baselines"]]}
    one, halving = out["one_epoch"], out["halving"]

    def higher(key):
        a, b = halving[key], one[key]
        return None if a is None or b is None else a > b

    speedups = [w["best_speedup"]["speedup"] for w in out.values()
                if w["best_speedup"] and w["best_speedup"]["speedup"] is not None]
    out["hypervolume_reference_ms"] = reference_ms
    out["targets"] = {"halving_higher_tau": higher("kendall_tau"),
                      "halving_higher_verified_hypervolume": higher("verified_hypervolume"),
                      f"verified_speedup_at_least_{TARGET_SPEEDUP}x": bool(speedups)
                      and max(speedups) >= TARGET_SPEEDUP,
                      "best_verified_speedup": max(speedups) if speedups else None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-s", type=float, default=None, help="wall-clock budget of each search "
                        "(default: the quickstart's timeout, 660 s; 60 s with --quick)")
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "search_truth", help="folder for both runs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--picks", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each verification training (full data)")
    parser.add_argument("--rungs", default="1,3,9", help="halving rungs in epochs, comma-separated")
    parser.add_argument("--keep", type=float, default=0.33)
    parser.add_argument("--quick", action="store_true", help="generated data, small networks, 60 s searches, "
                        "rungs 1,2, 2 picks, 2 seeds: checks the pipeline, its figures mean nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    if args.quick:
        args.rungs, args.picks, args.seeds = "1,2", 2, 2
    budget_s = args.budget_s or (60.0 if args.quick else None)
    base = load_config(QUICKSTART)
    budget_s = budget_s or base.timeout_s
    try:
        rungs = [int(r) for r in args.rungs.split(",")]
    except ValueError:
        parser.error(f"--rungs must be whole epochs separated by commas, got {args.rungs!r}")
    configs = way_configs(base, args.output, budget_s, rungs, args.keep, args.quick)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results, args.shared_cache = {}, None
    for way in WAYS:
        log(f"--- {way}: search for {budget_s:g} s, then verify")
        results[way] = run_way(configs[way], args, log)
        args.shared_cache = configs[way].output_dir() / CACHE_FILE
    report = {"budget_s": budget_s, "quick": args.quick, "rungs": rungs, "keep": args.keep, "seeds": args.seeds,
              "picks": args.picks, "verify_epochs": args.epochs, **summarise(results)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
