"""Calibration on this machine: does a calibrated model beat the per-op table it starts from?

For one space and its table (measured here with ``nas latency profile``), measure K + N random
networks end to end with the table's protocol (ONNX Runtime, batch 1), fit a calibrated model
on the first K (starting from the table) and compare, on the other N: the table's own
prediction (with its fitted composition terms, if any), the calibrated model, and a FLOPs
baseline ``a * MACs + b`` fitted on the same K. Prints JSON.

Measuring is resumable: each run measures at most ``--max-new`` networks into ``--cache`` and
exits, so long jobs go in short pieces under the shared CPU lock::

    python benchmarks/calibration_here.py --space mobilenet_v1 \\
        --table T.csv --cache runs/calibration_here/mobilenet_v1.json --max-new 60
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from nas.latency.calibrate import calibrate
from nas.latency.runner import Protocol
from nas.latency.table import LatencyTable
from nas.latency.validate import fit_linear, measure_networks, metrics, sample_networks
from nas.ops import count_macs
from nas.space import get_space
from nas.spec import parse_shape

SEED_BASE = 200_000  # apart from validation (0...) and composition (100,000...) networks


def measure_missing(nets, cache_path: Path, protocol: Protocol, max_new: int) -> dict:
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    todo = [(spec.arch_id, ops) for _, spec, ops in nets if spec.arch_id not in cache]
    # a random order, so that drift between measuring sessions hits the K and the N alike
    todo = [todo[i] for i in np.random.default_rng(0).permutation(len(todo))][:max_new]
    for start in range(0, len(todo), 20):
        chunk = todo[start:start + 20]
        for (arch_id, _), summary in zip(chunk, measure_networks([ops for _, ops in chunk], protocol)):
            cache[arch_id] = summary["median"]
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(cache, indent=0))
    return cache


def compare(table: LatencyTable | None, nets, cache: dict, k: int, seed: int) -> dict:
    ops = [o for _, _, o in nets]
    y = np.array([cache[spec.arch_id] for _, spec, _ in nets])
    train, test = np.arange(k), np.arange(k, len(nets))
    train_ops, test_ops = [ops[i] for i in train], [ops[i] for i in test]
    macs = np.array([count_macs(o) for o in ops], float)
    a, b = fit_linear(macs[train], y[train])
    tableless = calibrate(train_ops, y[train], seed=seed)
    out = {"calibrated without a table": metrics(tableless.predict_many(test_ops), y[test]),
           "flops_baseline (a*MACs+b on the same K)": metrics(a * macs[test] + b, y[test]),
           "selected_without_table": tableless.provenance["selected"]}
    if table is not None:
        model = calibrate(train_ops, y[train], table=table, seed=seed)
        out.update({"table (before)": metrics([table.predict(o) for o in test_ops], y[test]),
                    "calibrated from the table (after)": metrics(model.predict_many(test_ops), y[test]),
                    "selected": model.provenance["selected"], "ridge": model.provenance["ridge"],
                    "table_composition": {k: v for k, v in table.composition.as_dict().items() if k != "fitted"}})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", required=True)
    parser.add_argument("--table", help="the space's table measured on this machine (default: none)")
    parser.add_argument("--input", default="28x28x1")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--k", type=int, default=100, help="networks to calibrate on")
    parser.add_argument("--n", type=int, default=100, help="networks to report on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", required=True, help="JSON of measured networks (resumed)")
    parser.add_argument("--max-new", type=int, default=60, help="measure at most this many networks now")
    args = parser.parse_args(argv)
    table = LatencyTable.from_file(args.table) if args.table else None
    shape = parse_shape(args.input)
    if table is not None:
        table.check_input(shape)
    space = get_space(args.space, shape, args.classes)
    nets = sample_networks(space, args.k + args.n, SEED_BASE + args.seed)
    protocol = Protocol.from_dict(table.provenance.get("protocol", {})) if table is not None else Protocol()
    cache = measure_missing(nets, Path(args.cache), protocol, args.max_new)
    left = sum(spec.arch_id not in cache for _, spec, _ in nets)
    if left:
        print(json.dumps({"space": args.space, "measured": len(nets) - left, "left": left,
                          "note": "run again to measure the rest"}))
        return 3
    result = {"space": args.space, "input": args.input, "table": args.table, "k": args.k, "n": args.n,
              "protocol": protocol.as_dict(), **compare(table, nets, cache, args.k, args.seed)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
