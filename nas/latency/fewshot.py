"""Few-shot latency transfer: per-op tables of reference devices, offered to the calibrated
model (nas.latency.calibrate) so that a new device needs only a handful of measured networks.

This is how HELP (Lee et al., NeurIPS 2021) uses its meta-training devices, made additive and
simple: each reference device gets a :class:`ReferenceTable`, a per-op table fitted by robust
ridge regression to that device's whole-network latencies (one cost per op key, graph-context
terms for dead and constant code, adjacent-pair terms). A reference table prices *any*
network of the space, measured or not. For the new device, :func:`nas.latency.calibrate.calibrate`
with ``references=`` adds one feature per reference device (its predicted milliseconds) and
chooses, by cross-validation on the K measured networks only, between a ridge-regularised
combination of all reference devices plus shrunk op-level terms (dead code run, or removed by
the runtime) and a single reference device rescaled (``a * ms_d + b``: the closest device's
ranking, two coefficients). The MAC count is one more reference (:class:`MacsReference`), so
``a * MACs + b``, the MACs baseline, is a candidate too; and where the additive per-op table
fitted by least squares to the K networks predicts each of them from the others exactly (a
device whose latency is a sum of per-op costs), it is the model (see
``nas.latency.calibrate._additive_check``): the model is not meant to lose to either baseline.
Because every reference table is a sum over ops, so is the calibrated model: its breakdown
still attributes milliseconds to ops.

Reference data is a CSV with one network per row (``arch_str`` for NAS-Bench-201, ``arch``,
a JSON list of op indices, for FBNet) and a ``<device>_ms`` column per device; see
:func:`read_reference_csv`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.latency.features import (
    CONTEXT_TAGS,
    CalibrationError,
    Config,
    Featurizer,
    design_matrix,
    fit_matrix,
    relative_error_loss,
)
from nas.ops import OpInstance, op_macs

#: features of a reference table: per-key costs, graph context and adjacent pairs
REFERENCE_CONFIG = Config(("keys", "context", "pairs"), CONTEXT_TAGS, False)
REFERENCE_RIDGES = (1e-6, 1e-4, 1e-2)  # chosen per device on a held-out part of its networks
CHOICE_NETWORKS = 2000
REFERENCE_RIDGE = 1e-4  # the shipped NAS-Bench-201 device models (15,625 networks, nothing to choose)
MS_SUFFIX = "_ms"


class ReferenceTable:
    """One reference device's per-op table: ``coef`` maps feature names (``intercept``,
    ``count:<kind>``, ``key:<part key>``, ``ctx:...``, ``pair:...``; see
    nas.latency.calibrate) to milliseconds. Prices any network of the space it was fitted on."""

    def __init__(self, device: str, coef: Mapping[str, float], provenance: Mapping[str, Any] | None = None):
        self.device = device
        self.coef = {str(k): float(v) for k, v in coef.items()}
        if not all(map(math.isfinite, self.coef.values())):
            raise CalibrationError(f"reference table {device!r} holds non-finite coefficients")
        self.provenance = dict(provenance or {})
        self._feat = Featurizer(REFERENCE_CONFIG, None)
        self._op_cache: dict[OpInstance, float] = {}

    def op_ms(self, op: OpInstance) -> float:
        """The op's share of a network's latency on this device (ms)."""
        ms = self._op_cache.get(op)
        if ms is None:
            ms = self._op_cache[op] = sum(self.coef.get(n, 0.0) * v for n, v in self._feat.op(op).items())
        return ms

    def network_ms(self, ops: Sequence[OpInstance]) -> float:
        """What belongs to the network rather than to one op: the per-network overhead and
        the adjacent-pair terms (ms)."""
        ms = self.coef.get("intercept", 0.0)
        return ms + sum(self.coef.get(f"pair:{a.type}>{b.type}", 0.0) for a, b in zip(ops, ops[1:]))

    def predict(self, ops: Sequence[OpInstance]) -> float:
        return self.network_ms(ops) + sum(self.op_ms(op) for op in ops)

    def to_dict(self) -> dict:
        return {"device": self.device, "coef": self.coef, "provenance": self.provenance}

    @classmethod
    def from_dict(cls, data: Any, where: str = "reference table") -> ReferenceTable:
        try:
            if data.get("kind") == "macs":
                return MacsReference()
            return cls(str(data["device"]), data["coef"], data.get("provenance"))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, CalibrationError):
                raise
            raise CalibrationError(f"{where} is corrupt: {exc!r}") from None


MACS_REFERENCE = "macs"


class MacsReference(ReferenceTable):
    """The MAC count as one more reference "device" (its "ms" are millions of MACs): a new
    device that runs like its arithmetic (a CPU more than a GPU) is then weighed towards it,
    and ``a * MACs + b`` alone, the MACs baseline, is one of the calibration's candidates."""

    def __init__(self):
        super().__init__(MACS_REFERENCE, {}, {"kind": "macs", "unit": "millions of MACs"})

    def op_ms(self, op: OpInstance) -> float:
        return op_macs(op) / 1e6

    def network_ms(self, ops: Sequence[OpInstance]) -> float:
        return 0.0

    def to_dict(self) -> dict:
        return {**super().to_dict(), "kind": "macs"}


def with_macs(references: Mapping[str, ReferenceTable]) -> dict[str, ReferenceTable]:
    """``references`` and the MAC count (unless a device of that name is among them)."""
    return {**references, MACS_REFERENCE: references.get(MACS_REFERENCE) or MacsReference()}


def fit_reference(device: str, networks: Sequence[Sequence[OpInstance]], measured_ms: Sequence[float],
                  provenance: Mapping[str, Any] | None = None) -> ReferenceTable:
    """Fit one reference device's table to its measured networks (see :func:`fit_references`)."""
    return fit_references({device: measured_ms}, networks, provenance)[device]


def fit_references(measured: Mapping[str, Sequence[float]], networks: Sequence[Sequence[OpInstance]],
                   provenance: Mapping[str, Any] | None = None, seed: int = 0) -> dict[str, ReferenceTable]:
    """A :class:`ReferenceTable` per device of ``measured`` (device -> ms per network, in the
    order of ``networks``): Huber loss on the relative error, ridge on everything but the
    intercept and the per-kind base costs, its strength chosen per device on a held-out fifth
    of a subsample of the networks. The design matrix is built once for all devices."""

    nets = [tuple(ops) for ops in networks]
    if not nets:
        raise CalibrationError("reference tables need measured networks, got none")
    names, X = design_matrix(Featurizer(REFERENCE_CONFIG, None), nets)
    # the ridge is chosen on a subsample (at most CHOICE_NETWORKS, a fifth held out): choosing
    # needs far fewer networks than fitting, and the final fit uses them all
    rank = np.random.default_rng(seed).permutation(len(nets))
    sample = rank < min(len(nets), CHOICE_NETWORKS)
    holdout = sample & (rank % 5 == 0)
    tables = {}
    for device, ms in measured.items():
        y = np.asarray(ms, dtype=float)
        if len(y) != len(nets):
            raise CalibrationError(f"reference device {device!r}: {len(y)} latencies for {len(nets)} networks")
        ok = np.isfinite(y) & (y > 0)
        if ok.sum() < 10:
            raise CalibrationError(f"reference device {device!r} has fewer than 10 positive finite latencies")
        fit, check = ok & sample & ~holdout, ok & holdout
        ridge = REFERENCE_RIDGE if check.sum() < 5 else min(REFERENCE_RIDGES, key=lambda lam: relative_error_loss(
            X[check] @ fit_matrix(names, X[fit], y[fit], lam, REFERENCE_CONFIG), y[check]))
        theta = fit_matrix(names, X[ok], y[ok], ridge, REFERENCE_CONFIG)
        prov = {"networks": int(ok.sum()), "ridge": ridge, **(provenance or {})}
        tables[device] = ReferenceTable(device, {n: t for n, t in zip(names, theta) if t != 0.0}, prov)
    return tables


def predict_matrix(tables: Mapping[str, ReferenceTable], networks: Sequence[Sequence[OpInstance]]) -> dict:
    """{device: predicted ms per network} for many networks at once (one design matrix)."""
    names, X = design_matrix(Featurizer(REFERENCE_CONFIG, None), [tuple(ops) for ops in networks])
    return {d: X @ np.array([t.coef.get(n, 0.0) for n in names]) for d, t in tables.items()}


# --------------------------------------------------------------------------------------
# reference data files


def device_columns(columns: Sequence[str]) -> list[str]:
    """The device names of a measurement CSV's ``<device>_ms`` columns, in column order."""
    return [c[: -len(MS_SUFFIX)] for c in columns if c.endswith(MS_SUFFIX)]


def parse_fbnet_arch(text: str, layers: int = 22, choices: int = 9) -> list[int]:
    """A JSON list of op indices (``[0, 8, 3, ...]``), checked."""
    try:
        arch = json.loads(text)
    except json.JSONDecodeError:
        raise CalibrationError(f"arch must be a JSON list of {layers} op indices, got {text[:60]!r}") from None
    if (not isinstance(arch, list) or len(arch) != layers
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < choices for v in arch)):
        raise CalibrationError(f"arch must be a JSON list of {layers} op indices in 0..{choices - 1}, "
                               f"got {text[:80]!r}")
    return arch


def arch_column(space: str) -> str:
    """The CSV column that names a network, per space."""
    return {"nasbench201": "arch_str", "fbnet": "arch"}.get(space, "arch")


def networks_of(space: str, archs: Sequence[str]) -> list[tuple[OpInstance, ...]]:
    """Resolved ops of each network named in a measurement CSV (see :func:`arch_column`)."""
    from nas.ops import resolve
    from nas.space import get_space

    if space == "nasbench201":
        sp = get_space("nasbench201", (32, 32, 3), 10)
        return [resolve(sp.from_arch_str(text)) for text in archs]
    if space == "fbnet":
        sp = get_space("fbnet", (32, 32, 3), 100)
        return [resolve(sp.from_indices(parse_fbnet_arch(text))) for text in archs]
    raise CalibrationError(f"no reference data format for space {space!r}; expected nasbench201 or fbnet")


#: the reference-device measurements of each space inside the shared ARM data folder
REFERENCE_FILES = {"nasbench201": Path("nasbench201") / "nb201_latency_help_devices.csv",
                   "fbnet": Path("fbnet") / "fbnet_latency_help_devices.csv"}


def reference_file(data: str | Path, space: str) -> Path:
    """The reference CSV of ``space``: ``data`` itself if it is a file, else its file inside
    the shared ARM data folder ``data``."""
    data = Path(data)
    if data.is_file():
        return data
    if space not in REFERENCE_FILES:
        raise CalibrationError(f"no reference devices known for space {space!r}; "
                               f"expected one of {sorted(REFERENCE_FILES)}")
    path = data / REFERENCE_FILES[space]
    if not path.is_file():
        raise FileNotFoundError(f"reference-device file {path} does not exist (pass the shared ARM data folder)")
    return path


def read_reference_csv(path: str | Path, space: str, exclude: Sequence[str] = ()):
    """(archs, networks, {device: ms array}) of a reference CSV, devices in ``exclude`` left out."""
    import pandas as pd

    frame = pd.read_csv(path)
    column = arch_column(space)
    if column not in frame.columns:
        raise CalibrationError(f"{path} has no {column!r} column (one network per row); "
                               f"it has {list(frame.columns)[:6]}")
    devices = [d for d in device_columns(frame.columns) if d not in set(exclude)]
    if not devices:
        raise CalibrationError(f"{path} has no <device>_ms columns besides the excluded {list(exclude)}")
    archs = [str(a) for a in frame[column]]
    return archs, networks_of(space, archs), {d: frame[d + MS_SUFFIX].to_numpy(float) for d in devices}


def load_references(data: str | Path, space: str, exclude: Sequence[str] = ()) -> dict[str, ReferenceTable]:
    """Reference tables fitted on every network of the space's reference CSV."""
    path = reference_file(data, space)
    _, nets, measured = read_reference_csv(path, space, exclude)
    return fit_references(measured, nets, provenance={"source": str(path.name), "space": space})

