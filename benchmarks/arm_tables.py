"""The shipped ARM latency tables: how well the op estimator prices what a table lacks, and
what the tables say of reference networks beside their published whole-network figures.

    python benchmarks/arm_tables.py --json

Per table (every table in latency_tables/ measured on an ARM device): its entries, and the
op estimator (nas.latency.estimator, the ``estimate`` policy) judged by leave-one-out: each
measured entry predicted by an estimator fitted to all the others (share within +/-10% and
+/-5%, MAPE). For devices with published figures (nas.latency.published): each reference
network's raw table sum (measured entries plus estimated ones, how many estimated), and that
sum corrected by a whole-network scale fitted to the *other* published networks of the same
device (the judged network left out), each beside the published figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.latency import load_latency_model  # noqa: E402
from nas.latency.estimator import UnpricedKernelError, leave_one_out  # noqa: E402
from nas.latency.published import (  # noqa: E402
    priced_sum,
    published_figures,
    whole_network,
    whole_network_scale,
)
from nas.latency.registry import list_tables  # noqa: E402

TARGETS = {"mobilenet_v2_1.0": 0.10, "proxyless_mobile": 0.10}  # goal 0.05


def arm_tables() -> list[dict]:
    rows = []
    for row in list_tables():
        if not row["path"].endswith(".csv"):
            continue
        model = load_latency_model(row["path"])
        if str(model.provenance.get("machine", "")).lower() in ("arm64", "aarch64", "armv7l", "arm"):
            rows.append({**row, "model": model})
    return rows


def reference_figures(model) -> dict:
    out = {}
    for name, ms in published_figures(model).items():
        priced = priced_sum(model, name)
        if priced is None:
            out[name] = {"published_ms": ms, "error": "the table cannot price it (no reference spec, or a kernel "
                                                      "no entry contains)"}
            continue
        raw = priced["raw_ms"]
        entry = {"published_ms": ms, "raw_sum_ms": raw, "estimated_ops": priced["estimated_ops"],
                 "measured_share": priced["measured_share"], "raw_error_pct": 100 * (raw / ms - 1)}
        whole = whole_network(model, raw, leave_out=name)  # fitted without the judged network
        if whole is not None:
            entry.update(loo_scale=whole["scale"], loo_fitted_on=whole["fitted_on"], loo_weights=whole["weights"],
                         corrected_ms=whole["latency_ms"], corrected_error_pct=100 * (whole["latency_ms"] / ms - 1))
            entry["unweighted"] = unweighted_correction(model, name, raw, ms)
        if name in TARGETS:
            err = abs(entry.get("corrected_error_pct", entry["raw_error_pct"])) / 100
            entry["target_10pct_met"] = err <= TARGETS[name]
            entry["goal_5pct_met"] = err <= 0.05
        out[name] = entry
    return out


def unweighted_correction(model, name: str, raw: float, published_ms: float) -> dict | None:
    """The correction as it was before each network's ratio was weighted by its measured share
    (every published network counted alike, the judged one left out): shown for comparison."""
    others = {}
    for other in published_figures(model):
        priced = priced_sum(model, other) if other != name else None
        if priced is not None:
            others[other] = (priced["raw_ms"], 1.0)
    scale = whole_network_scale(others, published_figures(model))
    if scale is None:
        return None
    return {"scale": scale, "fitted_on": sorted(others), "corrected_ms": scale * raw,
            "corrected_error_pct": 100 * (scale * raw / published_ms - 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.parse_args()
    report = {}
    for row in arm_tables():
        model = row.pop("model")
        entry = {k: row[k] for k in ("device", "runtime", "threads", "space", "input", "entries", "source")}
        try:
            loo = leave_one_out(model.entries, model.ops)
            loo["unpriced"] = len(loo["unpriced"])
            entry["estimator_leave_one_out"] = loo
        except UnpricedKernelError as exc:
            entry["estimator_leave_one_out"] = {"error": str(exc)}
        figures = reference_figures(model)
        if figures:
            entry["reference_networks"] = figures
        report[row["name"]] = entry
    print(json.dumps({"tables": report}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
