"""Published whole-network latencies of reference networks, per device, and the whole-network
correction they allow.

Sums of per-block measurements can be biased against runs of whole networks (each block timed
alone pays its own invocation and cache warm-up). Where a device has published whole-network
figures for reference networks the table can price, the ratio published / table sum, averaged
over those networks (geometric mean), maps a table sum onto a whole-network estimate. A
network that is itself one of them is left out of the fit that judges it. Only figures
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


def table_sum(model, name: str) -> tuple[float, int] | None:
    """A reference network's table sum (ms, missing ops estimated from the table's entries)
    and how many ops were estimated; None if the table cannot price it."""
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
            return model.composition.total(ms), len(estimated)
    except ValueError:  # an op the estimator cannot price
        return None


@functools.lru_cache(maxsize=32)
def _sums(model) -> dict[str, float]:
    out = {}
    for name in published_figures(model):
        priced = table_sum(model, name)
        if priced is not None:
            out[name] = priced[0]
    return out


def whole_network_scale(raw_sums: dict[str, float], published: dict[str, float]) -> float | None:
    """The geometric mean of published / sum over the networks given (None without any)."""
    ratios = [published[name] / raw for name, raw in raw_sums.items() if name in published and raw > 0]
    if not ratios:
        return None
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


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
    return {"latency_ms": scale * raw_ms, "scale": scale, "fitted_on": sorted(fitted),
            "published_ms": published.get(leave_out) if leave_out else None}
