"""Estimating ops a latency table lacks, for the explicit ``nearest`` and ``interpolate``
policies. Estimates are never silent: predictions that use them warn, and breakdowns flag
them (see nas.latency.table).

* ``nearest``: the median of the most similar measured op of the same type (distance on
  log MACs, log parameters, log input/output sizes, plus kernel/stride/SE differences).
* ``interpolate``: a least-squares fit, per op type, of the medians on MACs, activation
  elements and parameters over the measured ops of that type (at least 4 of them; with
  fewer, ``nearest`` scaled by the cost ratio).
"""

from __future__ import annotations

import math

import numpy as np

from nas.latency.errors import MissingOpsError
from nas.ops import OpInstance, op_macs, op_params


def _features(op: OpInstance) -> np.ndarray:
    elems = math.prod(op.input) + math.prod(op.output)
    return np.array([1.0, op_macs(op), elems, op_params(op)], dtype=float)


def _distance(a: OpInstance, b: OpInstance) -> float:
    fa, fb = _features(a)[1:], _features(b)[1:]
    d = float(np.abs(np.log1p(fa) - np.log1p(fb)).sum())
    return d + (a.kernel != b.kernel) + (a.stride != b.stride) + (a.se != b.se) + (a.residual != b.residual)


class Estimator:
    """Estimates for ops missing from ``entries`` (key -> stats) given their ``ops``."""

    def __init__(self, entries: dict[str, dict], ops: dict[str, OpInstance]):
        self.by_type: dict[str, list[tuple[OpInstance, float]]] = {}
        for key, op in ops.items():
            self.by_type.setdefault(op.type, []).append((op, entries[key]["median"]))
        self._fits: dict[str, np.ndarray | None] = {}

    def _candidates(self, op: OpInstance) -> list[tuple[OpInstance, float]]:
        found = self.by_type.get(op.type)
        if not found:
            raise MissingOpsError([op.key], f"nas latency profile ... (the table has no {op.type!r} op to "
                                            f"estimate from; profile this op type)")
        return found

    def nearest(self, op: OpInstance) -> float:
        return min(self._candidates(op), key=lambda c: _distance(op, c[0]))[1]

    def _fit(self, op_type: str) -> np.ndarray | None:
        if op_type not in self._fits:
            rows = self.by_type.get(op_type, [])
            if len(rows) < 4:
                self._fits[op_type] = None
            else:
                x = np.stack([_features(o) for o, _ in rows])
                y = np.array([ms for _, ms in rows])
                scale = x.max(axis=0)
                scale[scale == 0] = 1
                coef, *_ = np.linalg.lstsq(x / scale, y, rcond=None)
                self._fits[op_type] = coef / scale
        return self._fits[op_type]

    def interpolate(self, op: OpInstance) -> float:
        self._candidates(op)
        coef = self._fit(op.type)
        if coef is None:
            near, ms = min(self._candidates(op), key=lambda c: _distance(op, c[0]))
            ratio = (_features(op)[1:3].sum() + 1) / (_features(near)[1:3].sum() + 1)
            return ms * ratio
        return max(float(_features(op) @ coef), 0.0)

    def estimate(self, op: OpInstance, policy: str) -> float:
        if policy == "nearest":
            return self.nearest(op)
        if policy == "interpolate":
            return self.interpolate(op)
        raise ValueError(f"missing-op policy must be 'nearest' or 'interpolate', got {policy!r}")
