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
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.archs import load_arch  # noqa: E402
from nas.latency import load_latency_model  # noqa: E402
from nas.latency.errors import MissingOpsError  # noqa: E402
from nas.latency.estimator import UnpricedKernelError, leave_one_out  # noqa: E402
from nas.latency.published import PUBLISHED, whole_network_scale  # noqa: E402
from nas.latency.registry import list_tables  # noqa: E402
from nas.latency.table import EstimatedLatencyWarning  # noqa: E402
from nas.ops import resolve  # noqa: E402
from nas.space import list_references  # noqa: E402

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


def price(model, name: str) -> dict | None:
    """Raw sum (ms) and estimated-op count of a reference network, or None if unpriceable."""
    shape = tuple(int(v) for v in model.provenance["input"].split("x"))
    spec = load_arch(name, shape, model.provenance.get("classes") or 1000)
    ops = resolve(spec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EstimatedLatencyWarning)
            rows = model.breakdown(ops, "estimate")
            total = model.predict(ops, "estimate")
    except (MissingOpsError, UnpricedKernelError) as exc:
        return {"error": str(exc).splitlines()[-1]}
    return {"raw_sum_ms": total, "estimated_ops": sum(r["estimated"] for r in rows), "ops": len(ops)}


def reference_figures(model) -> dict:
    published = {name: ms for name, ms, _ in PUBLISHED.get(model.provenance.get("device"), [])}
    priced = {name: price(model, name) for name in published if name in list_references()}
    raw = {n: p["raw_sum_ms"] for n, p in priced.items() if p and "raw_sum_ms" in p}
    out = {}
    for name, ms in published.items():
        entry = {"published_ms": ms, **(priced.get(name) or {"error": "no reference spec for this network"})}
        if name in raw:
            entry["raw_error_pct"] = 100 * (raw[name] / ms - 1)
            others = {n: v for n, v in raw.items() if n != name}
            scale = whole_network_scale(others, published)
            if scale is not None:
                entry.update(loo_scale=scale, loo_fitted_on=sorted(others), corrected_ms=scale * raw[name],
                             corrected_error_pct=100 * (scale * raw[name] / ms - 1))
            if name in TARGETS:
                err = abs(entry.get("corrected_error_pct", entry["raw_error_pct"])) / 100
                entry["target_10pct_met"] = err <= TARGETS[name]
                entry["goal_5pct_met"] = err <= 0.05
        out[name] = entry
    return out


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
