"""Calibrated latency models: a per-op table (measured, imported, or none) plus a correction
learned from K whole networks measured on the target device.

On a real device a network's latency is not the sum of its ops measured alone: the runtime
fuses sequences, removes dead code, folds constants, and each op carries overhead and memory
traffic that a per-op table sees differently. The model therefore predicts

    latency(ops) = sum_f theta_f * phi_f(ops)                        (milliseconds)

over features that are sums over the network's *parts* (the units the device runs: an op, or
one edge and one add of a NAS-Bench-201 cell), in feature groups:

- ``base``: the intercept (per-network overhead) and, per part kind, either the table's
  milliseconds (a per-kind scale on the table) or, without a table, the count, MACs and
  activation size (a regression on op features that also covers ops no network showed).
- ``keys``: one count per part key (op type and shapes): with no table, this is the additive
  per-op table fitted to the K networks.
- ``context``: per part kind and graph context (``dead``: its result never reaches the
  output; ``dead_zero_sum``: the same, in a node that sums an explicit zero, which keeps a
  data dependency unless the converter folds ``x * 0``; ``zero_sum``: it is summed with an
  explicit zero; ``const_in``: its input does not depend on the network input): what
  dead-code elimination, zero-term removal and constant folding do on this device's runtime.
  A dead-code tag has two priors (``Config.removed``): the part runs like live code (the base
  counts it), or the runtime removes it (the base does not); either way its context feature
  measures what remains, and the ridge pulls that towards the prior.
- ``overhead``: with a table, per-kind counts, MACs and activation sizes (what the table
  misses per op: call overhead, memory traffic).
- ``pairs``: counts of adjacent op-type pairs (fused sequences).
- ``reference``: one feature per reference device, that device's per-op table's prediction
  for the network (nas.latency.fewshot): what other devices say this network costs. With it,
  the base features are shrunk too, so that K networks choose a regularised combination of
  the reference devices plus a small op-level correction (few-shot transfer). The MAC count
  always joins the reference devices, and the additive per-op table replaces the model where
  it reproduces the K networks exactly, leave-one-out (a device that is a sum of op costs).

Which groups, priors and ridge strength are used is chosen by k-fold cross-validation inside
the K training networks only; the fit minimises a Huber loss on the *relative* error, so the
heavy-tailed noise of device measurements does not drag the fit. A network whose output does
not depend on its input at all (a NAS-Bench-201 cell cut off from its input) is folded to a
constant by deployment converters; it is predicted by the fastest such network among the K
(and like any other network when the K held none).

The model is saved as JSON (``format: nas-calibrated-latency``): the table it started from,
the correction's coefficients and the provenance of both.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.latency.features import (
    CONTEXT_TAGS,
    HUBER_DELTA,
    CalibrationError,
    Config,
    Featurizer,
    design_matrix,
    fit_matrix,
    network_is_constant,
    relative_error_loss,
)
from nas.ops import OpInstance

FORMAT = "nas-calibrated-latency"
VERSION = 3  # 2: dead code split by zero sums, removed-code priors; 3: reference-device tables
READABLE_VERSIONS = (2, 3)
GROUPS = ("keys", "context", "overhead", "pairs", "reference")
REMOVABLE_TAGS = ("dead", "dead_zero_sum")  # dead code: a runtime may remove it
RIDGE_GRID = (1e-6, 1e-4, 1e-2, 1.0)
TRANSFER_RIDGE_GRID = (1e-6, 1e-4, 1e-2, 1.0, 10.0, 100.0)  # few-shot: everything is shrunk, more strongly
FOLDS = 5
#: provenance fields copied to a saved model's top level, where the table listing reads them
LISTED_FIELDS = ("device", "runtime", "threads", "spaces", "space", "input", "entries", "source_summary")


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[i::k] for i in range(min(k, n))]


def _cv_loss(names, X, y, lam, config, seed) -> float:
    pred = np.zeros(len(y))
    for test in _folds(len(y), FOLDS, seed):
        train = np.setdiff1d(np.arange(len(y)), test)
        pred[test] = X[test] @ fit_matrix(names, X[train], y[train], lam, config)
    return relative_error_loss(pred, y)


def _candidates(has_table: bool, has_references: bool = False) -> list[Config]:
    """Forward-selection moves: each adds one feature group (context tags one at a time). A
    dead-code tag comes in two priors: the part runs like live code, or the runtime removes
    it (dead-code elimination); either way its context feature measures what remains."""
    context = [Config(("context",), (t,)) for t in CONTEXT_TAGS]
    removed = [Config(("context",), (t,), removed=(t,)) for t in REMOVABLE_TAGS]
    return ([Config(("keys",))] + context + removed
            + [Config(("pairs",))] + ([Config(("overhead",))] if has_table else [])
            + ([Config(("reference",))] if has_references else []))


def _merge(a: Config, b: Config) -> Config:
    groups = tuple(g for g in GROUPS if g in a.groups or g in b.groups)
    tags = tuple(t for t in CONTEXT_TAGS if t in a.tags or t in b.tags)
    removed = tuple(t for t in REMOVABLE_TAGS if t in a.removed or t in b.removed)
    return Config(groups, tags, a.table, removed)


def select_config(nets, y, table, seed: int = 0,
                  references: Mapping[str, Any] | None = None) -> tuple[Config, float, list[dict]]:
    """Greedy forward selection of feature groups and ridge strength by k-fold CV on the
    training networks only. Returns (config, ridge, the trace of CV losses)."""
    def loss(config: Config) -> tuple[float, float]:
        names, X = design_matrix(Featurizer(config, table, references), nets)
        grid = TRANSFER_RIDGE_GRID if "reference" in config.groups else RIDGE_GRID
        return min((_cv_loss(names, X, y, lam, config, seed), lam) for lam in grid)

    if references:
        return _select_transfer(loss, table is not None, list(references), nets)
    best = Config((), (), table is not None)
    best_loss, best_lam = loss(best)
    trace = [{"config": _config_dict(best), "cv_loss": round(best_loss, 5), "ridge": best_lam}]
    while True:
        moves = {_merge(best, c) for c in _candidates(table is not None, bool(references))} - {best}
        if not moves:
            break
        scored = sorted(((*loss(c), i, c) for i, c in enumerate(sorted(moves, key=repr))), key=lambda t: t[:3])
        cand_loss, cand_lam, _, cand = scored[0]
        if cand_loss >= best_loss * 0.995:  # a group must buy at least 0.5% to be kept
            break
        best, best_loss, best_lam = cand, cand_loss, cand_lam
        trace.append({"config": _config_dict(best), "cv_loss": round(best_loss, 5), "ridge": best_lam})
    return best, best_lam, trace


#: few-shot candidates: the reference devices alone, or with dead code told apart (run like
#: live code, or removed by the runtime), or with a per-op table fitted to the K networks, or
#: that table alone (a device whose latency is a sum of per-op costs, like a simulator's, is
#: priced exactly once K covers its ops); K networks are too few for a greedy search
TRANSFER_CANDIDATES = (
    Config(("reference",)),
    Config(("keys", "reference")),
    Config(("keys",)),
    Config(("context", "reference"), ("dead", "dead_zero_sum")),
    Config(("context", "reference"), ("dead", "dead_zero_sum"), removed=("dead",)),
)


def _select_transfer(loss, has_table: bool, devices: Sequence[str], nets) -> tuple[Config, float, list[dict]]:
    """The best of :data:`TRANSFER_CANDIDATES` and of the single reference devices (each
    rescaled) by cross-validation on the K networks; the trace lists every candidate, the
    chosen one last. The per-op table alone is a candidate only when the K networks number at
    least twice its entries: with fewer, cross-validation cannot tell a fit from a fluke."""
    scored = []
    singles = [Config(("reference",), only=d) for d in sorted(devices)]
    entries = len({n for ops in nets for n in Featurizer(Config(("keys",)), None).network(ops) if n.startswith("key:")})
    candidates = [c for c in TRANSFER_CANDIDATES if c.groups != ("keys",) or len(nets) >= 2 * entries]
    for candidate in (*candidates, *singles):
        config = Config(candidate.groups, candidate.tags, has_table and not candidate.only, candidate.removed,
                        candidate.only)
        cv_loss, lam = loss(config)
        scored.append({"config": _config_dict(config), "cv_loss": round(cv_loss, 5), "ridge": lam, "_c": config})
    best = scored[0]
    for entry in scored[1:]:
        if entry["cv_loss"] < best["cv_loss"] * 0.995:  # a richer model must buy 0.5%
            best = entry
    trace = [{k: v for k, v in e.items() if k != "_c"} for e in scored if e is not best]
    trace.append({k: v for k, v in best.items() if k != "_c"})
    return best["_c"], best["ridge"], trace


def _config_dict(config: Config) -> dict:
    return {"groups": list(config.groups), "tags": list(config.tags), "table": config.table,
            "removed": list(config.removed), "only": config.only}


# --------------------------------------------------------------------------------------
# the model


class CalibratedLatencyModel:
    """A table plus a learned correction; the same interface as a latency table.

    ``predict(ops) -> ms``, ``breakdown(ops) -> dict`` and ``provenance`` (a dict). Build one
    with :func:`calibrate`, :func:`fit_additive` or :meth:`from_file`. ``const_ms`` is the
    latency of a network whose output does not depend on its input, or None when the training
    networks showed no such network (then it is predicted like any other).
    """

    def __init__(self, config: Config, names: Sequence[str], coef: Sequence[float], *,
                 table: Mapping[str, float] | None = None, const_ms: float | None = None,
                 provenance: Mapping[str, Any] | None = None, references: Mapping[str, Any] | None = None):
        if config.table and table is None:
            raise CalibrationError("this model corrects a table, but no table was given")
        if "reference" in config.groups and not references:
            raise CalibrationError("this model weighs reference devices, but no reference tables were given")
        if len(names) != len(coef):
            raise CalibrationError(f"{len(names)} feature names but {len(coef)} coefficients")
        self.config = config
        self.table = dict(table) if table is not None else None
        self.coef = dict(zip(names, (float(c) for c in coef)))
        self.const_ms = None if const_ms is None else float(const_ms)
        self.provenance = dict(provenance or {})
        self.references = dict(references) if "reference" in config.groups else {}
        self._feat = Featurizer(config, self.table, self.references)
        self._op_cache: dict[OpInstance, float] = {}

    def _op_ms(self, op: OpInstance) -> float:
        ms = self._op_cache.get(op)
        if ms is None:
            ms = self._op_cache[op] = sum(self.coef.get(n, 0.0) * v for n, v in self._feat.op(op).items())
        return ms

    def _network_terms(self, ops: Sequence[OpInstance]) -> float:
        ms = self.coef.get("intercept", 0.0)
        if "pairs" in self.config.groups:
            ms += sum(self.coef.get(f"pair:{a.type}>{b.type}", 0.0) for a, b in zip(ops, ops[1:]))
        for name, ref in self.references.items():
            ms += self.coef.get(f"ref:{name}", 0.0) * ref.network_ms(ops)
        return ms

    def check_input(self, shape: Sequence[int]) -> None:
        """InputShapeError (a ValueError) when the model was calibrated for another input shape."""
        from nas.latency.errors import InputShapeError

        measured = self.provenance.get("input")
        got = "x".join(map(str, shape))
        if measured is not None and measured != got:
            raise InputShapeError(f"this latency model was calibrated for input {measured}, not {got}")

    def predict(self, ops: Sequence[OpInstance]) -> float:
        """Predicted latency of the whole network, in milliseconds."""
        ops = tuple(ops)
        if self.const_ms is not None and network_is_constant(ops):
            return self.const_ms
        return self._network_terms(ops) + sum(self._op_ms(op) for op in ops)

    def predict_many(self, networks: Iterable[Sequence[OpInstance]]) -> np.ndarray:
        return np.array([self.predict(ops) for ops in networks])

    def breakdown(self, ops: Sequence[OpInstance]) -> dict:
        """``{"total_ms", "network_ms", "constant", "ops": [{"index", "key", "ms"}]}``: each
        op's share of the prediction, and the per-network terms (overhead, fused pairs)."""
        ops = tuple(ops)
        if self.const_ms is not None and network_is_constant(ops):
            return {"total_ms": self.const_ms, "network_ms": self.const_ms, "constant": True,
                    "ops": [{"index": i, "key": op.key, "ms": 0.0} for i, op in enumerate(ops)]}
        rows = [{"index": i, "key": op.key, "ms": self._op_ms(op)} for i, op in enumerate(ops)]
        network = self._network_terms(ops)
        return {"total_ms": network + sum(r["ms"] for r in rows), "network_ms": network,
                "constant": False, "ops": rows}

    # ---- persistence

    def to_dict(self) -> dict:
        data = {"format": FORMAT, "version": VERSION, "config": _config_dict(self.config),
                "table": self.table, "correction": {"coef": self.coef, "const_ms": self.const_ms},
                "references": {name: ref.to_dict() for name, ref in self.references.items()},
                "provenance": self.provenance}
        # what `nas latency tables` lists, at the top level where it reads a model's fields
        data.update({k: self.provenance[k] for k in LISTED_FIELDS if k in self.provenance})
        return data

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        tmp.replace(path)  # never leave a half-written model behind
        return path

    @classmethod
    def from_dict(cls, data: Any, where: str = "calibrated model") -> CalibratedLatencyModel:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise CalibrationError(f"{where} is not a calibrated latency model (expected format {FORMAT!r})")
        if data.get("version") not in READABLE_VERSIONS:
            raise CalibrationError(f"{where} has version {data.get('version')!r}; this code reads "
                                   f"{', '.join(map(str, READABLE_VERSIONS))}")
        try:
            cfg, corr = data["config"], data["correction"]
            config = Config(tuple(cfg["groups"]), tuple(cfg["tags"]), bool(cfg["table"]), tuple(cfg["removed"]),
                            str(cfg.get("only", "")))
            unknown = (set(config.groups) - set(GROUPS) | set(config.tags) - set(CONTEXT_TAGS)
                       | set(config.removed) - set(config.tags))
            if unknown:
                raise CalibrationError(f"{where} names unknown feature groups or tags {sorted(unknown)}")
            coef = {str(k): float(v) for k, v in corr["coef"].items()}
            table = None if data["table"] is None else {str(k): float(v) for k, v in data["table"].items()}
            const_ms = None if corr["const_ms"] is None else float(corr["const_ms"])
            if not all(map(math.isfinite, [*coef.values(), const_ms or 0.0])):
                raise CalibrationError(f"{where} holds non-finite coefficients")
            from nas.latency.fewshot import ReferenceTable

            references = {str(name): ReferenceTable.from_dict(ref, f"{where}: reference {name!r}")
                          for name, ref in (data.get("references") or {}).items()}
            return cls(config, list(coef), list(coef.values()), table=table, const_ms=const_ms,
                       provenance=data.get("provenance") or {}, references=references)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, CalibrationError):
                raise
            raise CalibrationError(f"{where} is corrupt or truncated: {exc!r}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> CalibratedLatencyModel:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"calibrated latency model {str(path)!r} does not exist")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CalibrationError(f"{path} is not valid JSON (corrupt or truncated?): {exc}") from None
        return cls.from_dict(data, str(path))


def is_calibrated_model_file(path: str | Path) -> bool:
    """True when ``path`` is a JSON file in this module's format (for loaders that dispatch)."""
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return f'"format": "{FORMAT}"' in head or f'"format":"{FORMAT}"' in head


# --------------------------------------------------------------------------------------
# entry points


def table_as_mapping(table: Any) -> dict[str, float] | None:
    """``{op key: ms}`` from a mapping or from a latency table (its entries' medians)."""
    if table is None or isinstance(table, Mapping):
        return None if table is None else {str(k): float(v) for k, v in table.items()}
    entries = getattr(table, "entries", None)
    if isinstance(entries, Mapping):
        return {str(k): float(v["median"]) for k, v in entries.items()}
    raise CalibrationError(f"a base table must map op keys to ms or be a latency table, got {type(table).__name__}")


def _check_training(networks, measured_ms) -> tuple[list[tuple], np.ndarray]:
    nets = [tuple(ops) for ops in networks]
    y = np.asarray(measured_ms, dtype=float)
    if len(nets) != len(y):
        raise CalibrationError(f"{len(nets)} networks but {len(y)} measured latencies")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        bad = [float(v) for v in y[~np.isfinite(y) | (y <= 0)]][:5]
        raise CalibrationError(f"measured latencies must be positive milliseconds, got {bad}")
    for ops in nets:
        if not ops or not all(isinstance(op, OpInstance) for op in ops):
            raise CalibrationError("each network must be a non-empty sequence of resolved ops (nas.ops.resolve)")
    return nets, y


FOLDED_BELOW = 0.5  # constant networks this much faster than every other network were folded


def _split_constant(nets, y) -> tuple[list, np.ndarray, float | None, int]:
    const = np.array([network_is_constant(ops) for ops in nets])
    # Only a device whose runtime folds them runs constant networks far faster than any other
    # (a GPU or simulator runs them like any network): without that evidence, no rule.
    if not const.any() or (not const.all() and np.min(y[const]) >= FOLDED_BELOW * np.min(y[~const])):
        return list(nets), y, None, int(const.sum())
    # A folded network does almost no work and interference only ever slows a run, so the
    # fastest such measurement is the cleanest estimate (one slow outlier must not decide).
    const_ms = float(np.min(y[const]))
    return [n for n, c in zip(nets, const) if not c], y[~const], const_ms, int(const.sum())


def calibrate(networks: Sequence[Sequence[OpInstance]], measured_ms: Sequence[float], *,
              table: Any = None, seed: int = 0, min_networks: int | None = None,
              provenance: Mapping[str, Any] | None = None,
              references: Mapping[str, Any] | None = None) -> CalibratedLatencyModel:
    """Fit a calibrated model to ``networks`` (each a tuple of resolved ops) measured on the
    device (``measured_ms``, whole-network milliseconds), starting from ``table`` (op key ->
    ms, or a :class:`~nas.latency.table.LatencyTable`) or, without one, from a per-op table
    fitted to the same networks. ``references`` (name -> :class:`~nas.latency.fewshot.ReferenceTable`)
    offers other devices' per-op tables as one more feature group (few-shot transfer).

    Raises:
        CalibrationError: fewer than ``min_networks`` networks, mismatched lengths,
            non-positive latencies, or an op the table lacks.
    """
    nets, y = _check_training(networks, measured_ms)
    if references:
        from nas.latency.fewshot import with_macs

        references = with_macs(references)
    if min_networks is None:  # reference devices carry most of the model: fewer networks suffice
        min_networks = 5 if references else 10
    table = table_as_mapping(table)
    fit_nets, fit_y, const_ms, n_const = _split_constant(nets, y)
    if len(fit_nets) < min_networks:
        raise CalibrationError(f"calibration needs at least {min_networks} measured networks whose output "
                               f"depends on the input, got {len(fit_nets)}")
    config, lam, trace = select_config(fit_nets, fit_y, table, seed, references)
    additive_check = None
    if references and table is None:
        additive_check = _additive_check(nets, y, fit_nets, fit_y, config, lam, references)
        if additive_check["wins"]:  # the additive fit of all K: constant networks are ordinary ones here
            config, lam, fit_nets, fit_y, const_ms = Config(("keys",)), None, nets, y, None
            trace.append({"config": _config_dict(config), "cv_loss": additive_check["additive_loo_loss"],
                          "fit": "least_squares, leave-one-out"})
    if config.only:
        references = {config.only: references[config.only]}
    names, X = design_matrix(Featurizer(config, table, references), fit_nets)
    theta = fit_matrix(names, X, fit_y, lam, config) if lam is not None else _least_squares(names, X, fit_y)
    prov = {"kind": "calibrated", "networks": len(nets), "constant_networks": n_const,
            "selected": _config_dict(config), "fit": "huber_ridge" if lam is not None else "least_squares",
            "ridge": lam, "cv_trace": trace, "huber_delta": HUBER_DELTA,
            "folds": FOLDS, "seed": seed, "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **(provenance or {})}
    if additive_check is not None:
        prov["additive_check"] = additive_check
    if "reference" in config.groups:
        prov["references"] = sorted(references)
    return CalibratedLatencyModel(config, names, theta, table=table, const_ms=const_ms, provenance=prov,
                                  references=references)


def fit_fixed(networks: Sequence[Sequence[OpInstance]], measured_ms: Sequence[float], config: Config,
              ridge: float, *, provenance: Mapping[str, Any] | None = None) -> CalibratedLatencyModel:
    """A calibrated model with the given feature config and ridge (no selection), with the
    constant-network rule: for fits on many networks, where there is nothing to select."""
    nets, y = _check_training(networks, measured_ms)
    fit_nets, fit_y, const_ms, n_const = _split_constant(nets, y)
    names, X = design_matrix(Featurizer(config, None), fit_nets)
    theta = fit_matrix(names, X, fit_y, ridge, config)
    prov = {"kind": "calibrated", "networks": len(nets), "constant_networks": n_const,
            "selected": _config_dict(config), "ridge": ridge, "huber_delta": HUBER_DELTA, **(provenance or {})}
    return CalibratedLatencyModel(config, names, theta, const_ms=const_ms, provenance=prov)


def _least_squares(names: Sequence[str], X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The additive fit's coefficients: ordinary least squares (minimum-norm when ops always
    occur together) on the intercept and the per-key counts; every other column gets 0."""
    keep = np.array([n == "intercept" or n.startswith("key:") for n in names])
    theta = np.zeros(len(names))
    theta[keep] = np.linalg.lstsq(X[:, keep], y, rcond=None)[0]
    return theta


def _loo_loss(X: np.ndarray, y: np.ndarray, fit) -> float:
    """Leave-one-out loss of ``fit(X, y) -> theta`` (each network predicted from the others)."""
    pred = np.array([X[i] @ fit(np.delete(X, i, axis=0), np.delete(y, i)) for i in range(len(y))])
    return relative_error_loss(pred, y)


#: an additive fit whose leave-one-out error is below this reproduces the networks exactly:
#: far below any measured device's run-to-run noise, so the device is a sum of per-op costs
EXACT_LOO_LOSS = 1e-3


def _additive_check(nets, y, fit_nets, fit_y, config: Config, lam: float, references) -> dict:
    """Whether (``wins``) the additive least-squares fit replaces the chosen few-shot model, with
    the leave-one-out losses that decided it: it wins where it predicts each of the K networks
    from the others exactly (leave-one-out error under :data:`EXACT_LOO_LOSS`) and better than
    the model does, judged the same way.

    The additive fit is the baseline the model must never lose to, and a device whose latency
    is a sum of per-op costs (a simulator, or a phone table's sums) is priced exactly by it
    once K covers the ops. K-fold cross-validation, which fits on 80% of K, misses where that
    happens; leave-one-out does not. Short of exact, a few networks cannot tell an additive
    device from a lucky sample (ten networks may hold no dead code the device removes), so
    there the reference devices decide.

    The additive fit is judged on all K networks (``nets``, ``y``): where it is exact, the
    device ran the constant networks like any other. The model is judged on the networks it
    is fitted to (``fit_nets``, ``fit_y``: the constant ones, if folded, are its own rule's)."""
    add_names, add_X = design_matrix(Featurizer(Config(("keys",)), None), nets)
    additive_loss = _loo_loss(add_X, y, lambda Xt, yt: _least_squares(add_names, Xt, yt))
    check = {"additive_loo_loss": round(additive_loss, 7), "exact_below": EXACT_LOO_LOSS, "wins": False}
    if additive_loss < EXACT_LOO_LOSS:
        names, X = design_matrix(Featurizer(config, None, references), fit_nets)
        model_loss = _loo_loss(X, fit_y, lambda Xt, yt: fit_matrix(names, Xt, yt, lam, config))
        check.update(model_loo_loss=round(model_loss, 7), wins=bool(additive_loss < model_loss))
    return check


def fit_additive(networks: Sequence[Sequence[OpInstance]], measured_ms: Sequence[float], *,
                 provenance: Mapping[str, Any] | None = None) -> CalibratedLatencyModel:
    """The plain baseline: an additive per-op table (one latency per part key plus a constant)
    fitted to the whole networks by ordinary least squares (minimum-norm when ops always occur
    together). Constant networks get no special treatment."""
    nets, y = _check_training(networks, measured_ms)
    config = Config(("keys",), (), False)
    feat = Featurizer(config, None)
    names = sorted({n for ops in nets for n in feat.network(ops) if n == "intercept" or n.startswith("key:")})
    X = feat.matrix(nets, names)
    theta = _least_squares(names, X, y)
    prov = {"kind": "additive", "networks": len(nets), **(provenance or {})}
    return CalibratedLatencyModel(config, names, theta, provenance=prov)
