"""Published whole-network latencies of reference networks, per device, and the whole-network
correction they allow.

Sums of per-block measurements can be biased against runs of whole networks (each block timed
alone pays its own invocation and cache warm-up). Where a device has published whole-network
figures for reference networks the table can price, the ratio published / table sum, averaged
over those networks (geometric mean), maps a table sum onto a whole-network estimate. A
network that is itself one of them is left out of the fit that judges it.

Each network's ratio is weighted by the share of its table sum that was measured: the bias
being corrected is that of measured blocks, and a sum of estimated ops (MobileNetV1 on the
Pixel 1 table: every op estimated, from kernels unlike any the table measured) says how well
the estimator extrapolates, not how whole networks differ from their measured blocks. With
three published networks the correction rests on one or two ratios; its figures are reported
beside the raw sums, never instead of them. Only figures
measured on the same device and runtime as a table are comparable with it; networks without a
reference spec here (MnasNet-A1) are listed for completeness and skipped.
"""

from __future__ import annotations

import functools
import math
import warnings

# device -> [(reference network, ms, where it was published)]
PUBLISHED: dict[str, list[tuple[str, float, str]]] = {
    "Google Pixel 1": [
        ("mobilenet_v2_1.0", 75.0, "ProxylessNAS paper (TFLite, float, one big core); 73.8 ms in the TFLite model zoo"),
        ("proxyless_mobile", 78.0, "ProxylessNAS paper (TFLite, float, one big core)"),
        ("mobilenet_v1_1.0", 113.0, "MnasNet paper (TFLite, float, one big core)"),
        ("mnasnet_a1", 78.0, "MnasNet paper (TFLite, float, one big core)"),
    ],
}


def published_figures(model) -> dict[str, float]:
    """name -> published ms for the table's device (empty when none are known)."""
    return {name: ms for name, ms, _ in PUBLISHED.get((model.provenance or {}).get("device"), [])}


def priced_sum(model, name: str) -> dict | None:
    """A reference network's table sum: ``raw_ms``, ``estimated_ops`` and ``measured_share``
    (the share of the sum that measured entries make up); None if the table cannot price it."""
    from nas.archs import load_arch
    from nas.latency.table import EstimatedLatencyWarning
    from nas.ops import resolve
    from nas.space import list_references
    from nas.spec import parse_shape

    if name not in list_references():
        return None
    shape = parse_shape(model.provenance["input"])
    ops = resolve(load_arch(name, shape, model.provenance.get("classes") or 1000))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EstimatedLatencyWarning)
            ms, estimated = model.op_ms(ops, "estimate")
    except ValueError:  # an op the estimator cannot price
        return None
    raw = model.composition.total(ms)
    estimated_ms = sum(v for op, v in zip(ops, ms) if op.key in set(estimated))
    return {"raw_ms": raw, "estimated_ops": len(estimated),
            "measured_share": max(0.0, 1.0 - estimated_ms / raw) if raw > 0 else 0.0}


@functools.lru_cache(maxsize=32)
def _sums(model) -> dict[str, tuple[float, float]]:
    out = {}
    for name in published_figures(model):
        priced = priced_sum(model, name)
        if priced is not None:
            out[name] = (priced["raw_ms"], priced["measured_share"])
    return out


def whole_network_scale(raw_sums: dict[str, tuple[float, float]], published: dict[str, float]) -> float | None:
    """The geometric mean of published / sum over the networks given (name -> (sum, measured
    share)), each weighted by its measured share; None without a network that has one."""
    pairs = [(published[name] / raw, share) for name, (raw, share) in raw_sums.items()
             if name in published and raw > 0 and share > 0]
    if not pairs:
        return None
    return math.exp(sum(share * math.log(r) for r, share in pairs) / sum(share for _, share in pairs))


def whole_network(model, raw_ms: float, leave_out: str | None = None) -> dict | None:
    """``raw_ms`` (a table sum) as a whole-network estimate, with the scale and the networks
    it was fitted on (``leave_out`` excluded); None where the device has no usable figures."""
    published = published_figures(model)
    if not published:
        return None
    fitted = {n: v for n, v in _sums(model).items() if n != leave_out}
    scale = whole_network_scale(fitted, published)
    if scale is None:
        return None
    weights = {n: round(share, 4) for n, (_, share) in sorted(fitted.items()) if share > 0}
    return {"latency_ms": scale * raw_ms, "scale": scale, "fitted_on": sorted(weights),
            "weights": weights, "published_ms": published.get(leave_out) if leave_out else None}
