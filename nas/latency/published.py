"""Published whole-network latencies of reference networks, per device, to judge tables by.

Only figures measured on the same device and runtime as a table are comparable with it.
Networks without a reference spec here (MnasNet-A1) are listed for completeness and skipped
by whoever cannot build them.
"""

from __future__ import annotations

import math

# device -> [(reference network, ms, where it was published)]
PUBLISHED: dict[str, list[tuple[str, float, str]]] = {
    "Google Pixel 1": [
        ("mobilenet_v2_1.0", 75.0, "ProxylessNAS paper (TFLite, float, one big core); 73.8 ms in the TFLite model zoo"),
        ("proxyless_mobile", 78.0, "ProxylessNAS paper (TFLite, float, one big core)"),
        ("mobilenet_v1_1.0", 113.0, "MnasNet paper (TFLite, float, one big core)"),
        ("mnasnet_a1", 78.0, "MnasNet paper (TFLite, float, one big core)"),
    ],
}


def whole_network_scale(raw_sums: dict[str, float], published: dict[str, float]) -> float | None:
    """The factor that maps a table's sums onto whole-network runs: the geometric mean of
    published / sum over the networks given (None without any). A caller judging a network
    leaves it out of ``raw_sums``."""
    ratios = [published[name] / raw for name, raw in raw_sums.items() if name in published and raw > 0]
    if not ratios:
        return None
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))
