"""How well whole-network latency measurements on this machine agree with themselves: the
ceiling for any latency predictor validated against them.

For each space, N random networks are measured end to end twice in a row with the validation
protocol (ONNX Runtime, 1 thread, batch 1, interleaved rounds), and the two passes are
compared per statistic (the median the tables use, and the 10th percentile, which
interference from other processes, only ever adding time, disturbs least): Kendall tau between
the passes, the share of networks whose second measurement is within +/-5% and +/-10% of the
first, and the median ratio of the passes. A predictor checked against one pass cannot be
expected to agree with it much better than a second pass does.

    python benchmarks/measurement_repeatability.py [--spaces hybrid mobilenet_v1] [--n 60]

Prints JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.latency.runner import Protocol  # noqa: E402
from nas.latency.validate import measure_networks, sample_networks  # noqa: E402
from nas.space import get_space  # noqa: E402

STATISTICS = ("median", "p10")


def agreement(first: np.ndarray, second: np.ndarray) -> dict:
    rel = np.abs(second / first - 1)
    return {"kendall_tau": round(float(kendalltau(first, second)[0]), 4),
            "within_5pct": round(float(np.mean(rel <= 0.05)), 3),
            "within_10pct": round(float(np.mean(rel <= 0.10)), 3),
            "median_ratio": round(float(np.median(second / first)), 4)}


def repeat(space_name: str, n: int, seed: int, protocol: Protocol) -> dict:
    space = get_space(space_name, (28, 28, 1), 10)
    networks = [ops for _, _, ops in sample_networks(space, n, seed)]
    start = time.perf_counter()
    passes = [measure_networks(networks, protocol, progress=False) for _ in range(2)]
    out = {"space": space_name, "n": n, "seed": seed, "seconds": round(time.perf_counter() - start, 1),
           "latency_range_ms": [round(min(s["median"] for s in passes[0]), 4),
                                round(max(s["median"] for s in passes[0]), 4)]}
    for stat in STATISTICS:
        first, second = (np.array([s[stat] for s in p]) for p in passes)
        out[stat] = agreement(first, second)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["hybrid", "mobilenet_v1"])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    protocol = Protocol()
    report = {"benchmark": "measurement_repeatability", "protocol": protocol.as_dict(),
              "machine": platform.machine(), "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "spaces": [repeat(name, args.n, args.seed, protocol) for name in args.spaces]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
