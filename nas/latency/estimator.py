"""Pricing ops a device table lacks from the table's own entries (the ``estimate`` policy).

A table measured on a phone cannot be completed by profiling here: the only honest source
for a missing op is a model fitted to what was measured on that same device. Following
nn-Meter, an op is split into the kernels a mobile runtime executes (1x1 conv, depthwise
conv per kernel size, full conv, fully connected, pooling, squeeze-excite, h-swish,
residual add), and each kernel type costs

    a_kind * MACs + b_kind * memory traffic (input + output elements, weights)

plus a fixed per-kernel dispatch cost. The per-kind coefficients are fitted jointly to the
table's composite entries (each entry is the sum of its kernels) by non-negative least
squares on the *relative* error, so small and large ops count alike and no kernel can have
a negative cost. A kernel kind that no measured entry contains cannot be priced: that is an
error naming the kind, never a silent zero.

What a linear kernel model misses (a phone's efficiency varies with the tensor sizes: on the
Pixel 1 the 56x56 blocks run 10-25% slower per MAC than the 7x7 ones) is then corrected
locally: the estimate is multiplied by the weighted geometric mean of the measured/modelled
ratios of same-type entries of similar shape (a Gaussian kernel on log sizes, kernel and
stride), shrunk towards 1 when none is close.

No-ops (dropout, skipped layers) cost nothing and are never "missing" (see
:data:`NO_OP_TYPES`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from nas.latency.errors import MissingOpsError
from nas.ops import OpInstance, se_channels, shuffle_splits

NO_OP_TYPES = frozenset({"dropout", "skip"})  # identity at inference: no kernel runs

# Feature columns: per kind, its MACs and its memory traffic; then one count of kernels.
KINDS = ("pw", "gpw", "dw3s1", "dw3s2", "dw5s1", "dw5s2", "dw7s1", "dw7s2", "conv", "fc", "pool", "se", "hswish", "add")
COLUMNS = tuple(f"{kind}_{term}" for kind in KINDS for term in ("macs", "mem")) + ("kernels",)
_INDEX = {name: i for i, name in enumerate(COLUMNS)}


# The residual correction's kernel width (in the log units of _shape_features) and its pull
# towards no correction. Picked among 0.5/1/2 and 0.1/0.5/2 on the leave-one-out figures of the
# Pixel 1 and Note10 tables (benchmarks/arm_tables.py), so those figures are mildly optimistic.
BANDWIDTH = 0.5
SHRINK = 0.25


def _shape_features(op: OpInstance) -> np.ndarray:
    """Where an op sits among its type's shapes (log sizes, kernel, stride, shortcut)."""
    (hi, wi, cin), cout = op.input, op.output[2]
    return np.array([math.log(hi * wi), math.log(cin), math.log(cout), math.log(max(op.mid, 1)),
                     op.kernel / 2, op.stride, float(op.residual), float(op.se), float(op.act == "hswish")])


class UnpricedKernelError(ValueError):
    """An op contains a kernel kind that no entry of the table contains."""


def _add(row: np.ndarray, kind: str, macs: float, mem: float) -> None:
    row[_INDEX[f"{kind}_macs"]] += macs
    row[_INDEX[f"{kind}_mem"]] += mem
    row[_INDEX["kernels"]] += 1


def _pw(row, px: int, cin: int, cout: int, groups: int = 1) -> None:
    # a grouped 1x1 conv is its own kernel kind: fewer MACs, but not proportionally faster
    _add(row, "pw" if groups == 1 else "gpw", px * cin * cout // groups, px * (cin + cout) + cin * cout // groups)


def _dw(row, k: int, stride: int, in_px: int, out_px: int, c: int) -> None:
    kind = f"dw{k}s{stride}" if k in (3, 5, 7) and stride in (1, 2) else "conv"
    _add(row, kind, out_px * c * k * k, (in_px + out_px) * c + k * k * c)


def _conv(row, k: int, in_px: int, out_px: int, cin: int, cout: int) -> None:
    _add(row, "conv", out_px * cin * cout * k * k, in_px * cin + out_px * cout + k * k * cin * cout)


def kernel_features(op: OpInstance) -> np.ndarray:
    """The op's kernels as one feature row (see :data:`COLUMNS`).

    Raises:
        UnpricedKernelError: the op type has no kernel decomposition here.
    """
    (hi, wi, cin), (ho, wo, cout) = op.input, op.output
    in_px, out_px = hi * wi, ho * wo
    row = np.zeros(len(COLUMNS))
    t = op.type
    if t in NO_OP_TYPES:
        return row
    if t == "conv":
        (_pw(row, out_px, cin, cout) if op.kernel == 1 and op.stride == 1
         else _conv(row, op.kernel, in_px, out_px, cin, cout))
    elif t == "ds":
        _dw(row, op.kernel, op.stride, in_px, out_px, cin)
        _pw(row, out_px, cin, cout)
    elif t == "ir":
        if op.expand != 1:
            _pw(row, in_px, cin, op.mid)
        _dw(row, op.kernel, op.stride, in_px, out_px, op.mid)
        if op.se:
            s = se_channels(op.mid)
            _add(row, "se", 2 * op.mid * s, out_px * op.mid * 2 + 2 * op.mid * s)
        _pw(row, out_px, op.mid, cout)
        if op.act == "hswish":
            _add(row, "hswish", 0, (in_px + out_px) * op.mid)
        if op.residual:
            _add(row, "add", 0, 3 * out_px * cout)
    elif t == "shuffle":
        half = cout // 2
        branch_in = cin // 2 if shuffle_splits(op) else cin
        _pw(row, in_px, branch_in, op.mid)
        _dw(row, op.kernel, op.stride, in_px, out_px, op.mid)
        _pw(row, out_px, op.mid, half)
        if not shuffle_splits(op):
            _dw(row, op.kernel, op.stride, in_px, out_px, cin)
            _pw(row, out_px, cin, half)
    elif t == "fire":
        _pw(row, in_px, cin, op.squeeze)
        if op.expand1x1:
            _pw(row, out_px, op.squeeze, op.expand1x1)
        if op.expand3x3:
            _conv(row, 3, out_px, out_px, op.squeeze, op.expand3x3)
    elif t == "fbnet":  # FBNet block: (grouped) 1x1 expansion, depthwise, (grouped) 1x1 projection
        groups = getattr(op, "groups", 1)
        _pw(row, in_px, cin, op.mid, groups)
        _dw(row, op.kernel, op.stride, in_px, out_px, op.mid)
        _pw(row, out_px, op.mid, cout, groups)
        if op.residual:
            _add(row, "add", 0, 3 * out_px * cout)
    elif t == "fc":
        _add(row, "fc", cin * cout, cin + cout + cin * cout)
    elif t in ("gap", "maxpool"):
        _add(row, "pool", 0, in_px * cin + out_px * cout)
    else:
        raise UnpricedKernelError(f"op type {t!r} has no kernel decomposition; the estimator prices "
                                  f"conv, ds, ir, fbnet, shuffle, fire, fc, gap and maxpool ops")
    return row


class KernelEstimator:
    """Per-kernel-kind linear costs fitted to a table's entries (see the module docstring).

    Args:
        entries: op key -> stats (``median`` in ms), the measured entries to fit on.
        ops: op key -> OpInstance for the same keys.
    """

    def __init__(self, entries: Mapping[str, Mapping], ops: Mapping[str, OpInstance]):
        rows, targets, fitted_ops = [], [], []
        priced_types: set[str] = set()
        for key, op in ops.items():
            ms = entries[key]["median"]
            if ms > 0:
                priced_types.add(op.type)
            if op.type in NO_OP_TYPES or ms <= 0:
                continue  # a zero share (e.g. pooling folded into the classifier) says nothing
            try:
                rows.append(kernel_features(op))
            except UnpricedKernelError:
                continue
            targets.append(ms)
            fitted_ops.append(op)
        if not rows:
            raise UnpricedKernelError("the table has no entry the estimator can learn from")
        self.x = np.stack(rows)
        self.y = np.array(targets)
        self.present = self.x.any(axis=0)  # kinds some entry contains
        self.coef = _fit(self.x, self.y)
        self.types = np.array([op.type for op in fitted_ops])
        self.shapes = np.stack([_shape_features(op) for op in fitted_ops])
        self.residuals = np.log(self.y / np.maximum(self.x @ self.coef, 1e-12))
        # Types the table books at 0 because their cost is in a neighbouring entry (ProxylessNAS's
        # Logits entry holds pooling and classifier together): the same convention for new shapes.
        self.folded_types = {op.type for op in ops.values()} - priced_types

    def unpriced(self, op: OpInstance) -> list[str]:
        """The kernel columns of ``op`` that no fitted entry contains."""
        row = kernel_features(op)
        return [COLUMNS[i] for i in np.flatnonzero((row != 0) & ~self.present)]

    def estimate(self, op: OpInstance) -> float:
        """The op's estimated latency (ms); 0 for no-ops.

        Raises:
            MissingOpsError: the op holds a kernel kind no entry of the table contains.
        """
        if op.type in NO_OP_TYPES or op.type in self.folded_types:
            return 0.0
        try:
            absent = self.unpriced(op)
        except UnpricedKernelError as exc:
            raise MissingOpsError([op.key], "", advice=f"it cannot be estimated: {exc}") from None
        if absent:
            kinds = sorted({c.rsplit("_", 1)[0] for c in absent})
            raise MissingOpsError([op.key], "", advice=f"it cannot be estimated: no entry of this table contains a "
                                                       f"{'/'.join(kinds)} kernel to learn its cost from")
        return float(kernel_features(op) @ self.coef) * math.exp(self.correction(op))

    def correction(self, op: OpInstance) -> float:
        """The log-ratio by which measured entries of similar shape beat or miss the kernel
        model: a kernel-weighted mean of their residuals, shrunk towards 0 when few are close."""
        same = self.types == op.type
        if not same.any():
            return 0.0
        d2 = ((self.shapes[same] - _shape_features(op)) ** 2).sum(axis=1)
        w = np.exp(-d2 / (2 * BANDWIDTH ** 2))
        return float((w * self.residuals[same]).sum() / (w.sum() + SHRINK))


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative coefficients minimising the relative error sum(((x @ c) - y) / y)^2."""
    from scipy.optimize import nnls

    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    weighted = x / scale / y[:, None]
    coef, _ = nnls(weighted, np.ones_like(y), maxiter=50 * x.shape[1])
    return coef / scale


def leave_one_out(entries: Mapping[str, Mapping], ops: Mapping[str, OpInstance]) -> dict:
    """Each measured entry predicted by an estimator fitted to all the others: the share
    within +/-10% and +/-5%, the MAPE (%), and the entries the others could not price."""
    keys = [k for k, op in ops.items() if op.type not in NO_OP_TYPES and entries[k]["median"] > 0]
    errors, unpriced = [], []
    for key in keys:
        rest = [k for k in keys if k != key]
        try:
            model = KernelEstimator({k: entries[k] for k in rest}, {k: ops[k] for k in rest})
            guess = model.estimate(ops[key])
        except (MissingOpsError, UnpricedKernelError):
            unpriced.append(key)
            continue
        errors.append(guess / entries[key]["median"] - 1)
    err = np.abs(np.array(errors)) if errors else np.array([math.nan])
    return {"entries": len(keys), "judged": len(errors), "within_10pct": float(np.mean(err <= 0.10)),
            "within_5pct": float(np.mean(err <= 0.05)), "mape_pct": float(100 * np.mean(err)),
            "max_abs_error_pct": float(100 * np.max(err)), "unpriced": unpriced}

