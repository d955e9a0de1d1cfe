"""The features calibrated latency models are fitted on, and the fit: a network's *parts*
(the units a device runs: an op, or one edge and one add of a NAS-Bench-201 cell), their
graph context, the feature groups built from them (``Featurizer``) and the Huber-loss ridge
regression (``fit_matrix``). Shared by the calibrated model (nas.latency.calibrate) and the
reference devices' per-op tables (nas.latency.fewshot); nas.latency.calibrate's docstring says
what each feature group means.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.ops import OpInstance, op_macs

CONTEXT_TAGS = ("dead", "dead_zero_sum", "zero_sum", "const_in")
HUBER_DELTA = 0.05  # relative error where the loss turns linear: half the +/-10% band

# NAS-Bench-201 cell edges (destination, source) in arch-string order
_NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class CalibrationError(ValueError):
    """Bad calibration input or a corrupt calibrated-model file; the message says which."""


# --------------------------------------------------------------------------------------
# parts: the units of work a device runs


@dataclass(frozen=True)
class Part:
    kind: str  # op type, or "nb201:<edge op>" / "nb201:add"
    key: str  # kind and shapes: an entry of a fitted per-op table
    tags: tuple[str, ...] = ()  # graph context, a subset of CONTEXT_TAGS
    macs: float = 0.0
    act: float = 0.0  # input + output activation elements


def _cell_flow(ops: tuple[str, ...]) -> tuple[set[int], set[int]]:
    """(nodes that depend on the cell input, nodes whose value reaches the cell output),
    following only edges that are not ``none``."""
    live = [e for e, name in enumerate(ops) if name != "none"]
    fed = {0}
    for j in (1, 2, 3):
        if any(_NB201_EDGES[e][0] == j and _NB201_EDGES[e][1] in fed for e in live):
            fed.add(j)
    used = {3}
    for i in (2, 1, 0):
        if any(_NB201_EDGES[e][1] == i and _NB201_EDGES[e][0] in used for e in live):
            used.add(i)
    return fed, used


def _dead_tags(node: int, used: set[int], zero_in: set[int]) -> tuple[str, ...]:
    """Dead code, split by how a converter sees it: a dead node that sums an explicit zero
    (``x * 0`` keeps a data dependency unless the converter folds it) is told apart from
    plain dead code, which dead-code elimination removes."""
    if node in used:
        return ()
    return ("dead_zero_sum",) if node in zero_in else ("dead",)


def _cell_parts(op: OpInstance) -> tuple[Part, ...]:
    h, w, c = op.input
    fed, used = _cell_flow(op.ops)
    zero_in = {d for (d, _), name in zip(_NB201_EDGES, op.ops) if name == "none"}
    shape = f"{h}x{w}x{c}"
    parts = []
    for e, name in enumerate(op.ops):
        if name == "none":
            continue
        dst, src = _NB201_EDGES[e]
        tags = _dead_tags(dst, used, zero_in) + tuple(tag for tag, on in (
            ("zero_sum", dst in zero_in), ("const_in", src not in fed)) if on)
        k = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}.get(name, 0)
        parts.append(Part(f"nb201:{name}", f"nb201:{name}-{shape}", tags, k * k * c * c * h * w, 2 * h * w * c))
    for j in (1, 2, 3):
        inputs = sum(1 for e, (d, _) in enumerate(_NB201_EDGES) if d == j and op.ops[e] != "none")
        tags = _dead_tags(j, used, zero_in)
        parts.extend(Part("nb201:add", f"nb201:add-{shape}", tags, 0, 3 * h * w * c) for _ in range(inputs - 1))
    return tuple(parts)


@functools.lru_cache(maxsize=1 << 16)
def op_parts(op: OpInstance) -> tuple[Part, ...]:
    """The parts of one op: the op itself, except a NAS-Bench-201 cell, which is its edges and
    adds with their graph context (``none`` edges run nothing)."""
    if op.type == "nb201":
        return _cell_parts(op)
    act = math.prod(op.input) + math.prod(op.output)
    return (Part(op.type, op.key, (), op_macs(op), act),)


@functools.lru_cache(maxsize=1 << 16)
def _cuts_input(op: OpInstance) -> bool:
    return op.type == "nb201" and 3 not in _cell_flow(op.ops)[0]


def network_is_constant(ops: Sequence[OpInstance]) -> bool:
    """True when the network's output does not depend on its input (a cell whose output node
    is cut off from its input): converters fold such a network to a constant."""
    return any(map(_cuts_input, ops))


# --------------------------------------------------------------------------------------
# features


@dataclass(frozen=True)
class Config:
    """Which feature groups (and context tags) a model uses; hashable, so features cache."""

    groups: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    table: bool = False
    removed: tuple[str, ...] = ()  # tags whose parts the base features treat as not run
    only: str = ""  # one reference device and nothing else: its latency, rescaled and offset


def _table_ms(table: Mapping[str, float], op: OpInstance) -> float:
    try:
        return table[op.key]
    except KeyError:
        raise CalibrationError(f"the table has no entry for op {op.key}") from None


def _op_features(op: OpInstance, config: Config, table: Mapping[str, float] | None,
                 references: Mapping[str, Any] | None = None) -> Counter:
    f: Counter = Counter()
    if references and "reference" in config.groups:
        for name, ref in references.items():
            if not config.only or name == config.only:
                f[f"ref:{name}"] += ref.op_ms(op)
        if config.only:
            return f
    if config.table:
        f[f"table:{op.type}"] += _table_ms(table, op)
    for part in op_parts(op):
        tags = [t for t in part.tags if t in config.tags]
        # A removed part: the base assumes the runtime drops it; its ctx feature says what remains.
        runs = not any(t in config.removed for t in tags)
        if runs and (not config.table or "overhead" in config.groups):
            f[f"count:{part.kind}"] += 1
            f[f"macs:{part.kind}"] += part.macs / 1e6
            f[f"act:{part.kind}"] += part.act / 1e5
        if runs and "keys" in config.groups:
            f[f"key:{part.key}"] += 1
        if "context" in config.groups and tags:
            f[f"ctx:{part.kind}:{'+'.join(tags)}"] += 1
    return f


@functools.lru_cache(maxsize=1 << 18)
def _tableless_features(op: OpInstance, config: Config) -> Counter:
    return _op_features(op, config, None)


class Featurizer:
    """Feature dicts of networks for one config, cached per op (networks share ops)."""

    def __init__(self, config: Config, table: Mapping[str, float] | None,
                 references: Mapping[str, Any] | None = None):
        self.config, self.table = config, table
        self.references = references if "reference" in config.groups else None
        self._cache: dict[OpInstance, Counter] = {}

    def op(self, op: OpInstance) -> Counter:
        if self.table is None and self.references is None:
            return _tableless_features(op, self.config)  # depends on the op alone: shared by all models
        if op not in self._cache:
            self._cache[op] = _op_features(op, self.config, self.table, self.references)
        return self._cache[op]

    def network(self, ops: Sequence[OpInstance]) -> Counter:
        f: Counter = Counter({"intercept": 1.0})
        for op in ops:
            f.update(self.op(op))
        if "pairs" in self.config.groups:
            for a, b in zip(ops, ops[1:]):
                f[f"pair:{a.type}>{b.type}"] += 1
        if self.references:
            for name, ref in self.references.items():
                if not self.config.only or name == self.config.only:
                    f[f"ref:{name}"] += ref.network_ms(ops)
        return f

    def matrix(self, networks: Sequence[Sequence[OpInstance]], names: Sequence[str]) -> np.ndarray:
        index = {n: i for i, n in enumerate(names)}
        X = np.zeros((len(networks), len(names)))
        for r, ops in enumerate(networks):
            for name, value in self.network(ops).items():
                if name in index:  # a feature no training network had carries no weight
                    X[r, index[name]] = value
        return X


def _penalised(name: str, config: Config) -> bool:
    """Refinements shrink towards the base model; the intercept and the base costs (the
    per-kind table scales, or without a table the per-kind count, MACs and activation terms)
    are free. So the ridge pulls a context towards its prior: like live code, or, for a
    ``removed`` tag, removed by the runtime."""
    if config.only:  # one device, rescaled: two free coefficients
        return False
    if "reference" in config.groups:  # few-shot: K networks weigh references and op terms alike
        return name != "intercept"
    base = ("table:",) if config.table else ("table:", "count:", "macs:", "act:")
    return not (name == "intercept" or name.startswith(base))


# --------------------------------------------------------------------------------------
# fitting


def huber_ridge(X: np.ndarray, y: np.ndarray, penalty: np.ndarray, lam: float,
                delta: float | None = None, iters: int = 40) -> np.ndarray:
    """Coefficients minimising mean Huber(relative error) + lam * sum(penalty * theta^2) on
    standardised features, by iteratively reweighted least squares."""
    delta = HUBER_DELTA if delta is None else delta
    scale = X.std(axis=0)
    scale[scale <= 1e-12 * (np.abs(X).max(axis=0) + 1e-12)] = 1.0  # the intercept
    A = (X / scale) / y[:, None]  # rows in relative units: A @ theta - 1 is the relative error
    b = np.ones(len(y))
    reg = lam * np.diag(penalty) + 1e-9 * np.eye(X.shape[1])
    u = np.ones(len(y))
    theta = np.zeros(X.shape[1])
    for _ in range(iters):
        Au = A * u[:, None]
        new = np.linalg.solve(A.T @ Au / len(y) + reg, Au.T @ b / len(y))
        r = np.abs(A @ new - b)
        u = np.minimum(1.0, delta / np.maximum(r, 1e-12))
        if np.allclose(new, theta, rtol=1e-7, atol=1e-10):
            theta = new
            break
        theta = new
    return theta / scale


def relative_error_loss(pred: np.ndarray, y: np.ndarray) -> float:
    """Cross-validation loss: mean relative error, clipped at 50% so one outlier cannot decide."""
    return float(np.mean(np.minimum(np.abs(pred / y - 1), 0.5)))


def design_matrix(feat: Featurizer, nets) -> tuple[list[str], np.ndarray]:
    names = sorted({n for ops in nets for n in feat.network(ops)})
    return names, feat.matrix(nets, names)


def fit_matrix(names: list[str], X: np.ndarray, y: np.ndarray, lam: float, config: Config) -> np.ndarray:
    """Coefficients for every column of X; a column constant over these rows gets 0 (it is
    the intercept's business)."""
    varies = X.std(axis=0) > 1e-9 * (np.abs(X).mean(axis=0) + 1e-12)
    keep = np.array([n == "intercept" or varies[i] for i, n in enumerate(names)])
    penalty = np.array([1.0 if _penalised(n, config) else 0.0 for n, k in zip(names, keep) if k])
    theta = np.zeros(len(names))
    theta[keep] = huber_ridge(X[:, keep], y, penalty, lam)
    return theta
