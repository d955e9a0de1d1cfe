"""Calibrated latency models against real ARM measurements (NAS-Bench-201 on a Raspberry Pi 4
and a Pixel 3, HW-NAS-Bench's end-to-end latencies).

For each device column and each K, fit on K random networks (several seeds) and report, on
all the other networks, the share within +/-5% and +/-10%, MAPE, Kendall tau and Spearman of
the calibrated model beside the plain additive baseline (a per-op table fitted by least
squares to the same K). Prints JSON.

    python benchmarks/arm_calibration.py --data ../shared/data/arm [--k 20 50 100 500] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from nas.latency.calibrate import calibrate, fit_additive
from nas.ops import resolve
from nas.space import get_space

CSV = Path("nasbench201") / "nb201_latency_raspi4_pixel3.csv"
DEVICES = ("raspi4_ms", "pixel3_ms")


def metrics(pred: np.ndarray, measured: np.ndarray) -> dict:
    rel = np.abs(pred / measured - 1)
    return {"within_5pct": float(np.mean(rel <= 0.05)), "within_10pct": float(np.mean(rel <= 0.10)),
            "mape": float(np.mean(rel)), "kendall_tau": float(kendalltau(pred, measured)[0]),
            "spearman": float(spearmanr(pred, measured)[0])}


def summarise(runs: list[dict]) -> dict:
    return {name: {"mean": round(float(np.mean([r[name] for r in runs])), 4),
                   "std": round(float(np.std([r[name] for r in runs])), 4)} for name in runs[0]}


def load(data: Path) -> tuple[pd.DataFrame, list[tuple]]:
    path = data / CSV if data.is_dir() else data
    if not path.is_file():
        sys.exit(f"error: {path} does not exist (pass --data pointing at the shared ARM data folder)")
    frame = pd.read_csv(path)
    space = get_space("nasbench201", (32, 32, 3), 10)
    networks = [resolve(space.from_arch_str(text)) for text in frame["arch_str"]]
    return frame, networks


def run_device(networks, y, ks, seeds) -> dict:
    out = {}
    for k in ks:
        calibrated, additive, chosen, seconds = [], [], [], []
        for seed in range(seeds):
            order = np.random.default_rng(seed).permutation(len(y))
            train, test = order[:k], order[k:]
            train_nets = [networks[i] for i in train]
            test_nets = [networks[i] for i in test]
            start = time.perf_counter()
            model = calibrate(train_nets, y[train], seed=seed)
            seconds.append(time.perf_counter() - start)
            calibrated.append(metrics(model.predict_many(test_nets), y[test]))
            additive.append(metrics(fit_additive(train_nets, y[train]).predict_many(test_nets), y[test]))
            chosen.append(model.provenance["selected"])
        out[f"K={k}"] = {"calibrated": summarise(calibrated), "additive_baseline": summarise(additive),
                         "fit_seconds_median": round(float(np.median(seconds)), 2),
                         "selected_per_seed": chosen}
    return out


def _forced(train_nets, y, config, lam, delta=None, constant_rule=True):
    """A calibrated model with a fixed feature config (no selection): for the ablation."""
    from nas.latency import calibrate as cal

    nets, fit_y, const_ms, _ = cal._split_constant(list(train_nets), np.asarray(y, float))
    if not constant_rule:
        nets, fit_y, const_ms = list(train_nets), np.asarray(y, float), None
    names, X = cal._design(cal.Featurizer(config, None), nets)
    saved, cal.HUBER_DELTA = cal.HUBER_DELTA, delta or cal.HUBER_DELTA
    try:
        theta = cal._fit_matrix(names, X, fit_y, lam, config)
    finally:
        cal.HUBER_DELTA = saved
    return cal.CalibratedLatencyModel(config, names, theta, const_ms=const_ms)


def ablation(networks, y, k, seeds) -> dict:
    """What each modelling choice buys at one K: every variant fitted on the same networks.
    The fixed variants are the steps of the method, not a choice: only ``cv_selected`` is what
    ``calibrate`` does (a fixed config chosen by looking at test networks would not count)."""
    from nas.latency.calibrate import Config

    split = Config(("context",), ("dead", "dead_zero_sum"))
    prior = Config(("context",), ("dead", "dead_zero_sum"), removed=("dead",))
    variants = {
        "additive_least_squares": lambda n, t: fit_additive(n, t),
        "base_features_huber": lambda n, t: _forced(n, t, Config(), 1e-6),
        "plus_dead_code_context (dead nodes summing no zero)": lambda n, t: _forced(
            n, t, Config(("context",), ("dead",)), 1e-6),
        "plus_dead_nodes_summing_a_zero (context split)": lambda n, t: _forced(n, t, split, 1e-6),
        "plus_removed_prior (ridge 1e-2 towards elimination)": lambda n, t: _forced(n, t, prior, 1e-2),
        "same_least_squares_not_huber": lambda n, t: _forced(n, t, prior, 1e-2, delta=1e6),
        "same_without_constant_rule": lambda n, t: _forced(n, t, prior, 1e-2, constant_rule=False),
        "cv_selected (the shipped method)": lambda n, t: calibrate(n, t, seed=0),
    }
    runs: dict[str, list] = {name: [] for name in variants}
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(y))
        train, test = order[:k], order[k:]
        train_nets, test_nets = [networks[i] for i in train], [networks[i] for i in test]
        for name, fit in variants.items():
            runs[name].append(metrics(fit(train_nets, y[train]).predict_many(test_nets), y[test]))
    return {name: {m: v["mean"] for m, v in summarise(r).items()} for name, r in runs.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the ARM data folder or the NAS-Bench-201 CSV")
    parser.add_argument("--k", type=int, nargs="+", default=[20, 50, 100, 500])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--devices", nargs="+", default=list(DEVICES), choices=DEVICES)
    parser.add_argument("--ablation", type=int, metavar="K",
                        help="instead: what each modelling choice buys, at this K")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    frame, networks = load(args.data)
    result = {"benchmark": "arm_calibration", "space": "nasbench201", "networks": len(frame),
              "seeds": args.seeds, "evaluated_on": "all networks not used for fitting",
              "machine": platform.machine(), "devices": {}}
    for device in args.devices:
        y = frame[device].to_numpy(float)
        if args.ablation:
            table = ablation(networks, y, args.ablation, args.seeds)
            result["devices"][device] = {f"ablation K={args.ablation}": table}
        else:
            result["devices"][device] = run_device(networks, y, args.k, args.seeds)
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
