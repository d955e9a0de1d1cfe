"""Few-shot latency transfer to devices nobody tuned on (HELP-style), on NAS-Bench-201 or FBNet.

    python benchmarks/arm_calibration.py --space nasbench201 \
        --csv ../shared/data/arm/nasbench201/nb201_latency_raspi4_pixel3.csv \
        --devices raspi4,pixel3 --k 10,20,50,100 --seeds 5 --json [--data ../shared/data/arm]

FILE has one network per row (``arch_str`` for NAS-Bench-201; ``arch``, a JSON list of 22 op
indices, for FBNet) and a ``<device>_ms`` column per device. The reference devices are read
from the shared ARM data folder (``--data`` or ``$NAS_ARM_DATA``): the HELP devices of the
space. For each held-out device and seed:

1. the networks of FILE are split at random into a pool and a test half (``--test-fraction``);
2. a per-op table is fitted for every reference device on its networks that are *not* test
   networks; the held-out device is never a reference (nor any device named in ``--exclude``);
3. K networks are taken from the pool and measured on the held-out device; the few-shot model
   (nas.latency.calibrate with the reference tables) is fitted on them, and so are the
   baselines: ``additive``, a per-op table fitted to the same K by least squares, and
   ``macs``, the MAC count (its ranking; ``a * MACs + b`` fitted to the K for the errors);
4. all three are scored on the test networks: Spearman, Kendall tau, share within +/-10%,
   MAPE (mean and std over seeds).

Which K networks: ``--sampling designed`` (default) stratifies the pool by the reference
devices' consensus latency and takes one network per stratum, and in a space with networks
whose output does not depend on the input (NAS-Bench-201) makes one of them such a network,
a probe for constant folding (HELP likewise measures a fixed set of reference networks on a
new device). ``--sampling random`` takes K at random.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from nas.latency.calibrate import calibrate, fit_additive, network_is_constant
from nas.latency.fewshot import (
    arch_column,
    device_columns,
    fit_references,
    networks_of,
    predict_matrix,
    reference_file,
)
from nas.ops import count_macs

METRICS = ("spearman", "kendall_tau", "within_10pct", "mape")


def metrics(pred: np.ndarray, measured: np.ndarray) -> dict:
    rel = np.abs(pred / measured - 1)
    return {"spearman": float(spearmanr(pred, measured)[0]), "kendall_tau": float(kendalltau(pred, measured)[0]),
            "within_10pct": float(np.mean(rel <= 0.10)), "mape": float(np.mean(rel))}


def summarise(runs: list[dict]) -> dict:
    return {name: {"mean": round(float(np.mean([r[name] for r in runs])), 4),
                   "std": round(float(np.std([r[name] for r in runs])), 4)} for name in METRICS}


def choose_k(pool: np.ndarray, k: int, consensus: np.ndarray, constant: np.ndarray, sampling: str,
             rng: np.random.Generator) -> np.ndarray:
    """Indices of the K networks to measure (see the module docstring)."""
    if sampling == "random":
        return rng.choice(pool, k, replace=False)
    probes = pool[constant[pool]]
    take_probe = len(probes) > 0 and k >= 5
    rest = pool[~constant[pool]] if take_probe else pool
    strata = np.array_split(rest[np.argsort(consensus[rest], kind="stable")], k - int(take_probe))
    chosen = [rng.choice(s) for s in strata]
    if take_probe:
        chosen.append(rng.choice(probes))
    return np.array(chosen)


def macs_baseline(macs: np.ndarray, train: np.ndarray, test: np.ndarray, y: np.ndarray) -> np.ndarray:
    A = np.c_[macs[train], np.ones(len(train))]
    a, b = np.linalg.lstsq(A, y[train], rcond=None)[0]
    return a * macs[test] + b


class Data:
    """The held-out devices' file and the reference devices' file, networks resolved once."""

    def __init__(self, space: str, csv: Path, data: Path):
        self.space = space
        target = pd.read_csv(csv)
        column = arch_column(space)
        if column not in target.columns:
            sys.exit(f"error: {csv} has no {column!r} column; it has {list(target.columns)[:8]}")
        self.target = target
        self.target_archs = [str(a) for a in target[column]]
        self.ref_path = reference_file(data, space)
        ref = pd.read_csv(self.ref_path)
        self.ref_archs = [str(a) for a in ref[column]]
        self.ref_ms = {d: ref[d + "_ms"].to_numpy(float) for d in device_columns(ref.columns)}
        archs = sorted(set(self.target_archs) | set(self.ref_archs))
        index = {a: i for i, a in enumerate(archs)}
        nets = networks_of(space, archs)
        self.target_nets = [nets[index[a]] for a in self.target_archs]
        self.ref_nets = [nets[index[a]] for a in self.ref_archs]
        self.macs = np.array([count_macs(ops) for ops in self.target_nets], float)
        self.constant = np.array([network_is_constant(ops) for ops in self.target_nets])

    def devices(self) -> list[str]:
        return device_columns(self.target.columns)


def run_seed(data: Data, devices: list[str], ks: list[int], seed: int, args) -> dict:
    """Scores of every device and K for one seed: {device: {k: {model|additive|macs: metrics}}}."""
    rng = np.random.default_rng(seed)
    n = len(data.target_nets)
    order = rng.permutation(n)
    n_test = int(round(n * args.test_fraction))
    test, pool = order[:n_test], order[n_test:]
    test_archs = {data.target_archs[i] for i in test}
    keep = np.array([a not in test_archs for a in data.ref_archs])  # test networks stay unseen
    ref_nets = [ops for ops, k in zip(data.ref_nets, keep) if k]
    references = fit_references({d: ms[keep] for d, ms in data.ref_ms.items() if d not in args.exclude},
                                ref_nets)
    test_nets = [data.target_nets[i] for i in test]
    log_pred = ({d: np.log(np.maximum(p, 1e-6)) for d, p in predict_matrix(references, data.target_nets).items()}
                if args.sampling == "designed" else {})
    out: dict = {}
    for device in devices:
        refs = {d: r for d, r in references.items() if d != device}
        y = data.target[device + "_ms"].to_numpy(float)
        consensus = np.mean([log_pred[d] for d in refs], axis=0) if log_pred else None
        for k in ks:
            train = choose_k(pool, k, consensus, data.constant, args.sampling, rng)
            train_nets = [data.target_nets[i] for i in train]
            model = calibrate(train_nets, y[train], seed=seed, references=refs)
            additive = fit_additive(train_nets, y[train])
            out.setdefault(device, {})[k] = {
                "model": metrics(model.predict_many(test_nets), y[test]),
                "additive": metrics(additive.predict_many(test_nets), y[test]),
                "macs": {**metrics(macs_baseline(data.macs, train, test, y), y[test]),
                         "spearman": float(spearmanr(data.macs[test], y[test])[0]),
                         "kendall_tau": float(kendalltau(data.macs[test], y[test])[0])},
                "selected": selected_name(model.provenance)}
    return out


def selected_name(provenance: dict) -> str:
    """What the calibration chose: its feature groups, the one reference device it rescaled,
    or ``additive`` (the least-squares per-op table won the cross-validation)."""
    if provenance.get("fit") == "least_squares":
        return "additive"
    selected = provenance["selected"]
    return "+".join(selected["groups"]) + (f"({selected['only']})" if selected["only"] else "")


def parse_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", choices=("nasbench201", "fbnet"), required=True)
    parser.add_argument("--csv", type=Path, required=True, help="held-out devices' measurements, one network per row")
    parser.add_argument("--devices", type=parse_list, help="held-out devices (default: every <device>_ms column)")
    parser.add_argument("--k", type=parse_list, default=["10", "20", "50", "100"], help="K values, e.g. 10,20,50")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=os.environ.get("NAS_ARM_DATA"),
                        help="the shared ARM data folder with the reference devices (default $NAS_ARM_DATA)")
    parser.add_argument("--exclude", type=parse_list, default=[], help="devices never used as references")
    parser.add_argument("--sampling", choices=("designed", "random"), default="designed")
    parser.add_argument("--test-fraction", type=float, default=0.5)
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("give --data (the shared ARM data folder) or set NAS_ARM_DATA")
    if not args.csv.is_file():
        parser.error(f"--csv {args.csv} does not exist")
    try:
        ks = [int(k) for k in args.k]
    except ValueError:
        parser.error(f"--k must be integers separated by commas, got {','.join(args.k)}")
    start = time.perf_counter()
    data = Data(args.space, args.csv, args.data)
    devices = args.devices or data.devices()
    unknown = [d for d in devices if d not in data.devices()]
    if unknown:
        parser.error(f"unknown device(s) {unknown}; {args.csv} has {data.devices()}")
    runs = []
    for seed in range(args.seeds):
        runs.append(run_seed(data, devices, ks, seed, args))
        print(f"seed {seed} done after {time.perf_counter() - start:.0f} s", file=sys.stderr)
    result = {"benchmark": "arm_calibration", "space": args.space, "csv": args.csv.name,
              "references": {"file": data.ref_path.name, "devices": sorted(set(data.ref_ms) - set(args.exclude)),
                             "held_out_device_excluded": True},
              "networks": len(data.target_nets), "test_fraction": args.test_fraction, "sampling": args.sampling,
              "seeds": args.seeds, "machine": platform.machine(), "devices": {}}
    for device in devices:
        result["devices"][device] = {
            str(k): {**{name: summarise([r[device][k][name] for r in runs]) for name in ("model", "additive", "macs")},
                     "selected_groups": [r[device][k]["selected"] for r in runs]}
            for k in ks}
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
