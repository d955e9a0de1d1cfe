"""Proving a table: measure random whole networks end to end and compare with predictions.

Whole networks are exported like ops (ONNX, batch norm folded, batch 1) and timed with the
same protocol (:func:`nas.latency.runner.measure`). The table's prediction is compared with
a FLOPs-proportional baseline, ``a * MACs + b``, fitted the same way as the table's
systematic terms: on the table's composition networks when it has them (see
:func:`fit_composition`), otherwise by 2-fold cross-fitting on the validation networks
themselves (which favours the baseline).

Figures: share of networks within +/-5% and +/-10%, MAPE, Kendall tau, Spearman rho.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
from collections.abc import Sequence

import numpy as np
from scipy import stats as sstats

from nas.latency import runner
from nas.latency.table import Composition, LatencyTable, weight_mb
from nas.ops import OpInstance, count_macs, resolve

COMPOSE_SEED = 100_000  # composition networks are drawn from here on, validation from 0


def sample_networks(space, n: int, seed: int = 0) -> list[tuple[int, object, tuple[OpInstance, ...]]]:
    """``n`` distinct random members of ``space`` as (seed, spec, ops), deterministic in ``seed``."""
    rng = random.Random(seed)
    seen, out = set(), []
    for _ in range(n * 50):
        if len(out) == n:
            break
        s = rng.randrange(2 ** 31)
        spec = space.sample(s)
        if spec.arch_id not in seen:
            seen.add(spec.arch_id)
            out.append((s, spec, resolve(spec)))
    if len(out) < n:
        raise ValueError(f"space {space.name!r} has fewer than {n} distinct networks")
    return out


def network_call(ops: Sequence[OpInstance], protocol: runner.Protocol, runtime: str = "onnxruntime"):
    if runtime == "torch":
        from nas.latency.profile import torch_call_network

        return torch_call_network(ops, protocol)
    from nas.export.to_onnx import export_ops

    model = export_ops(ops).SerializeToString()
    return runner.bound_call(runner.make_session(model, protocol.threads, optimization=protocol.optimization))


def measure_networks(networks: Sequence[Sequence[OpInstance]], protocol: runner.Protocol,
                     runtime: str = "onnxruntime", chunk: int = 25, progress: bool = True) -> list[dict]:
    """Whole-network latency summaries (ms), measured in interleaved chunks."""
    from tqdm import tqdm

    out: list[dict] = []
    with runner.pinned(protocol.cpu), tqdm(total=len(networks), unit="net", desc="measuring networks",
                                           disable=not progress) as bar:
        for i in range(0, len(networks), chunk):
            calls = {j: network_call(ops, protocol, runtime) for j, ops in enumerate(networks[i:i + chunk], start=i)}
            results = runner.measure(calls, protocol, on_done=lambda _k: bar.update(1))
            out.extend(results[j] for j in sorted(results))
    return out


def metrics(predicted: Sequence[float], measured: Sequence[float]) -> dict:
    """Within +/-5% and +/-10% (shares), MAPE (%), Kendall tau, Spearman rho, mean error (%)."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    rel = p / m - 1
    return {"n": int(len(m)), "within_5pct": float(np.mean(np.abs(rel) <= 0.05)),
            "within_10pct": float(np.mean(np.abs(rel) <= 0.10)), "mape_pct": float(np.mean(np.abs(rel)) * 100),
            "mean_error_pct": float(np.mean(rel) * 100), "max_abs_error_pct": float(np.max(np.abs(rel)) * 100),
            "kendall_tau": float(sstats.kendalltau(p, m)[0]), "spearman": float(sstats.spearmanr(p, m)[0])}


def fit_linear(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(a, b) minimising the squared *relative* error of ``a * x + b`` against ``y``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    design = np.stack([x, np.ones_like(x)], axis=1) / y[:, None]
    (a, b), *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    return float(a), float(b)


def _fit_relative(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coefficients minimising the squared relative error of ``design @ coef`` against ``y``."""
    coef, *_ = np.linalg.lstsq(design / y[:, None], np.ones_like(y), rcond=None)
    return coef


def _loo_mape(design: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out mean absolute relative error of a relative least-squares fit."""
    errors = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        coef = _fit_relative(design[keep], y[keep])
        errors.append(abs(design[i] @ coef / y[i] - 1))
    return float(np.mean(errors))


def fit_composition(table: LatencyTable, networks: Sequence[Sequence[OpInstance]], measured: Sequence[float],
                    record: dict) -> Composition:
    """The table's systematic terms fitted on whole networks measured end to end:
    ``measured - overhead ~= scale * sum(median - overhead) + offset [+ per_mb * weight MB]``.

    The weight term is kept only if it lowers the leave-one-out error on these networks.
    ``record`` (space, seeds, protocol) is stored with the fit and its data, so the FLOPs
    baseline can be fitted on exactly the same networks."""
    ov = table.composition.overhead_ms
    sums = np.array([sum(table.entries[op.key]["median"] - ov for op in ops) for ops in networks])
    mbs = np.array([weight_mb(ops) for ops in networks])
    y = np.asarray(measured, float) - ov
    plain = np.stack([sums, np.ones_like(sums)], axis=1)
    weighted = np.stack([sums, np.ones_like(sums), mbs], axis=1)
    loo = {"scale+offset": _loo_mape(plain, y), "scale+offset+per_mb": _loo_mape(weighted, y)}
    use_mb = loo["scale+offset+per_mb"] < loo["scale+offset"]
    coef = _fit_relative(weighted if use_mb else plain, y)
    fitted = Composition(overhead_ms=ov, scale=float(coef[0]), offset_ms=float(coef[1]),
                         per_mb_ms=float(coef[2]) if use_mb else 0.0)
    before = metrics([Composition(overhead_ms=ov).total([s + ov]) for s in sums], measured)
    after = metrics([fitted.total([s + ov], mb) for s, mb in zip(sums, mbs)], measured)
    fit = {**record, "networks": len(networks), "measured_ms": [round(float(m), 6) for m in measured],
           "sum_ms": [round(float(v), 6) for v in sums], "weight_mb": [round(float(v), 6) for v in mbs],
           "macs": [count_macs(ops) for ops in networks], "loo_mape": loo,
           "terms": "scale+offset+per_mb" if use_mb else "scale+offset", "before": before, "after": after,
           "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    return dataclasses.replace(fitted, fitted=fit)


def flops_baseline(table: LatencyTable, macs: Sequence[int], measured: Sequence[float]) -> tuple[list, str]:
    """FLOPs-proportional predictions for the validation networks, and how they were fitted."""
    fit = table.composition.fitted
    if fit and fit.get("macs") and fit.get("measured_ms"):
        a, b = fit_linear(fit["macs"], fit["measured_ms"])
        return [a * x + b for x in macs], f"a*MACs+b fitted on the table's {fit['networks']} composition networks"
    idx = np.arange(len(macs))
    pred = np.zeros(len(macs))
    halves = (idx % 2 == 0, idx % 2 == 1)
    x, y = np.asarray(macs, float), np.asarray(measured, float)
    for train, test in (halves, halves[::-1]):
        a, b = fit_linear(x[train], y[train])
        pred[test] = a * x[test] + b
    return pred.tolist(), "a*MACs+b, 2-fold cross-fitted on the validation networks (the table has no fit)"


def validate(table: LatencyTable, space, n: int, seed: int, protocol: runner.Protocol,
             runtime: str = "onnxruntime", progress: bool = True) -> dict:
    """Predict and measure ``n`` random networks of ``space``; the validation record."""
    import time

    nets = sample_networks(space, n, seed)
    ops_list = [ops for _, _, ops in nets]
    start = time.perf_counter()
    predicted = [table.predict(ops) for ops in ops_list]
    predict_s = time.perf_counter() - start
    start = time.perf_counter()
    summaries = measure_networks(ops_list, protocol, runtime, progress=progress)
    measure_s = time.perf_counter() - start
    measured = [s["median"] for s in summaries]
    macs = [count_macs(ops) for ops in ops_list]
    baseline, how = flops_baseline(table, macs, measured)
    return {
        "space": space.name, "input": "x".join(map(str, space.input_shape)), "classes": space.classes,
        "table": table.path, "n": n, "seed": seed, "runtime": runtime, "protocol": protocol.as_dict(),
        "composition": {k: v for k, v in table.composition.as_dict().items() if k != "fitted"},
        "table_prediction": metrics(predicted, measured), "flops_baseline": {**metrics(baseline, measured),
                                                                             "fitted": how},
        "networks_measured_per_s": n / measure_s, "predict_wall_s": predict_s,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "networks": [{"seed": s, "arch": spec.to_string(), "macs": m, "measured_ms": meas["median"],
                      "measured_p10": meas["p10"], "measured_p90": meas["p90"], "predicted_ms": p, "flops_ms": f}
                     for (s, spec, _), m, meas, p, f in zip(nets, macs, summaries, predicted, baseline)],
    }


def plot(report: dict, path: str) -> None:
    """Predicted-vs-measured scatter of the table and the FLOPs baseline, with +/-10% bands."""
    # A figure of its own (no pyplot): the caller's matplotlib backend stays as it was.
    from matplotlib.figure import Figure

    nets = report["networks"]
    m = np.array([r["measured_ms"] for r in nets])
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    t, f = report["table_prediction"], report["flops_baseline"]
    ax.scatter(m, [r["flops_ms"] for r in nets], s=12, alpha=0.6, marker="x", color="tab:gray",
               label=f"FLOPs baseline: {f['within_10pct']:.0%} within 10%, tau {f['kendall_tau']:.2f}")
    ax.scatter(m, [r["predicted_ms"] for r in nets], s=14, alpha=0.8, color="tab:blue",
               label=f"table: {t['within_10pct']:.0%} within 10%, tau {t['kendall_tau']:.2f}")
    lo, hi = m.min() * 0.85, m.max() * 1.15
    grid = np.array([lo, hi])
    ax.plot(grid, grid, "k-", lw=1)
    ax.fill_between(grid, grid * 0.9, grid * 1.1, color="tab:green", alpha=0.12, label="+/-10%")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(f"{report['space']} {report['input']}: {report['n']} random networks ({report['runtime']})",
                 fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
