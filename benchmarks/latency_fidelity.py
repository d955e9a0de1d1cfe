"""Latency-table fidelity: per shipped table, the validation figures of the table's prediction
and of a FLOPs-proportional baseline side by side, and the predictor's speed against how many
networks per second can be measured end to end.

    python benchmarks/latency_fidelity.py                 # summarise the shipped validation
                                                          # records, time the predictor now
    python benchmarks/latency_fidelity.py --remeasure 100
                                                          # validate every table again first

Prints JSON. Validation records are ``latency_tables/<table>.validation.json`` (written by
``nas latency validate --save``); predictions per second are timed here on resolved ops
(``predict(ops)`` over 2,000 random networks of the table's space, best of 3 passes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.latency import load_latency_model  # noqa: E402
from nas.latency.runner import Protocol  # noqa: E402
from nas.latency.validate import sample_networks, validate  # noqa: E402
from nas.space import get_space  # noqa: E402

FIGURES = ("within_5pct", "within_10pct", "mape_pct", "kendall_tau", "spearman")
TARGET = {"within_10pct": 0.95, "kendall_tau": 0.95, "predictions_per_s": 10_000}


def predictions_per_second(model, space, networks: int = 2000) -> float:
    nets = [ops for _, _, ops in sample_networks(space, networks, seed=7)]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for ops in nets:
            model.predict(ops)
        best = min(best, time.perf_counter() - start)
    return networks / best


def summarise(table_path: Path, record: dict, model, space) -> dict:
    t, f = record["table_prediction"], record["flops_baseline"]
    pps = predictions_per_second(model, space)
    return {
        "space": record["space"], "input": record["input"], "table": table_path.name, "n": record["n"],
        "seed": record["seed"], "validated": record["date"],
        "table_prediction": {k: round(t[k], 4) for k in FIGURES},
        "flops_baseline": {**{k: round(f[k], 4) for k in FIGURES}, "fitted": f["fitted"]},
        "predictions_per_s": round(pps), "networks_measured_per_s": round(record["networks_measured_per_s"], 2),
        "speedup": round(pps / record["networks_measured_per_s"]),
        "meets_targets": t["within_10pct"] >= TARGET["within_10pct"] and t["kendall_tau"] >= TARGET["kendall_tau"]
        and pps >= TARGET["predictions_per_s"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=str(ROOT / "latency_tables"), help="folder of shipped tables")
    parser.add_argument("--remeasure", type=int, metavar="N", help="validate each table again on N networks")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    results = []
    for table_path in sorted(Path(args.tables).glob("*-ort-*.csv")):
        model = load_latency_model(table_path)
        prov = model.provenance
        input_shape = tuple(int(v) for v in prov["input"].split("x"))
        space = get_space(prov["spaces"][0], input_shape, prov["classes"])
        record_path = table_path.with_suffix(".validation.json")
        if args.remeasure:
            record = validate(model, space, args.remeasure, args.seed, Protocol(threads=prov["threads"]),
                              progress=False)
        elif record_path.is_file():
            record = json.loads(record_path.read_text())
        else:
            print(f"note: {table_path.name} has no validation record; skipped", file=sys.stderr)
            continue
        results.append(summarise(table_path, record, model, space))
    print(json.dumps({"benchmark": "latency_fidelity", "targets": TARGET, "tables": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
