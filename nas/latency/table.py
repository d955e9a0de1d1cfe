"""Latency lookup tables: one measured latency per op key, and the network prediction.

On disk a table is two files side by side (read and written by :mod:`nas.latency.tableio`):

* ``NAME.csv``: one row per op key. Columns: ``key``, every :class:`~nas.ops.OpInstance` field
  (as :meth:`OpInstance.fields` writes them), then ``n, median, mean, std, p10, p90`` (ms) and
  the optional ``spread`` and ``attempts`` of the measurement protocol.
* ``NAME.json``: the provenance (device, CPU, runtime, protocol, date, git revision, input
  shape, ...) and the composition terms that turn per-op medians into a network latency.

A network's latency (ms) is predicted as::

    overhead + offset + scale * sum_i (median_i - overhead) + per_mb * sum_i weight_MB_i

Every separately timed op paid one session call (``overhead``, measured with the same
protocol); a network pays it once. ``scale``, ``offset`` and ``per_mb`` (the cost of
streaming a network's float32 weights, which an op timed in a loop finds in cache) are
systematic terms fitted on whole networks measured end to end (``nas latency compose``;
1, 0 and 0 until then). See nas.latency.missing for the policies that estimate ops the table lacks.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, get_args

from nas.latency.errors import InputShapeError, LatencyTableError, MissingOpsError
from nas.latency.estimator import NO_OP_TYPES
from nas.latency.tableio import KIND, read_table, sidecar_path, write_table
from nas.ops import OpInstance, op_params
from nas.spec import parse_shape

# What to do about an op the table lacks; the config's latency.missing takes its choices from here.
MissingPolicy = Literal["error", "nearest", "interpolate", "estimate"]
MISSING_POLICIES = get_args(MissingPolicy)


@dataclasses.dataclass(frozen=True)
class Composition:
    """How op medians compose into a network latency (all ms): see the module docstring."""

    overhead_ms: float = 0.0
    scale: float = 1.0
    offset_ms: float = 0.0
    per_mb_ms: float = 0.0
    fitted: dict | None = None  # how the terms were fitted (networks, seeds, data, errors)

    def total(self, op_ms: Iterable[float], weight_mb: float = 0.0) -> float:
        return (self.overhead_ms + self.offset_ms + self.scale * sum(ms - self.overhead_ms for ms in op_ms)
                + self.per_mb_ms * weight_mb)

    def per_op(self, ms: float, weight_mb: float = 0.0) -> float:
        """An op's share of a network's latency (the breakdown's numbers)."""
        return self.scale * (ms - self.overhead_ms) + self.per_mb_ms * weight_mb

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str) -> Composition:
        try:
            values = {k: float(data[k]) for k in ("overhead_ms", "scale", "offset_ms", "per_mb_ms") if k in data}
        except (TypeError, ValueError):
            raise LatencyTableError(f"{where}: composition terms must be numbers, got {data!r}") from None
        if not all(math.isfinite(v) for v in values.values()) or values.get("scale", 1.0) <= 0:
            raise LatencyTableError(f"{where}: composition terms must be finite with scale > 0, got {data!r}")
        if values.get("overhead_ms", 0.0) < 0:
            raise LatencyTableError(f"{where}: composition overhead_ms is a measured call time, so >= 0; "
                                    f"got {values['overhead_ms']!r}")
        return cls(**values, fitted=data.get("fitted"))


class LatencyTable:
    """A per-op latency table with its provenance; predictions are pure.

    ``entries`` maps op key -> stats dict (``n, median, mean, std, p10, p90`` in ms, and
    optionally ``spread``, ``attempts``); ``ops`` maps op key -> OpInstance.
    """

    kind = KIND

    def __init__(self, entries: dict[str, dict], ops: dict[str, OpInstance], provenance: dict,
                 composition: Composition | None = None, missing: str | None = "error", path: str | None = None):
        # None: the table's own default (a device table imported from elsewhere estimates its
        # gaps, since they cannot be measured here), else "error"
        missing = missing or provenance.get("missing_default", "error")
        if missing not in MISSING_POLICIES:
            raise ValueError(f"missing-op policy must be one of {list(MISSING_POLICIES)}, got {missing!r}")
        self.entries = entries
        self.ops = ops
        self.provenance = provenance
        self.composition = composition or Composition()
        self.missing_policy = missing
        self.path = path
        self._estimator = None
        self._kernel_estimator = None
        self._median_cache: dict[str, float] | None = None

    # ---- basic queries

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, op: OpInstance | str) -> bool:
        return (op if isinstance(op, str) else op.key) in self.entries

    @property
    def input_shape(self) -> tuple[int, int, int] | None:
        text = self.provenance.get("input")
        return parse_shape(text) if text else None

    def check_input(self, shape: Sequence[int]) -> None:
        """Raise ValueError when the table was measured for another input shape (HxWxC)."""
        measured = self.input_shape
        if measured is not None and tuple(shape) != measured:
            got = "x".join(map(str, shape))
            raise InputShapeError(f"latency table {self.path or ''} was measured for input {self.provenance['input']}, "
                             f"not {got}; profile one for {got} (nas latency profile --input {got} ...)")

    def missing(self, ops: Iterable[OpInstance]) -> list[str]:
        """Keys of ``ops`` the table lacks, in first-seen order (no-ops are never missing:
        they cost nothing)."""
        seen: dict[str, None] = {}
        for op in ops:
            if op.key not in self.entries and op.type not in NO_OP_TYPES:
                seen.setdefault(op.key)
        return list(seen)

    def missing_error(self, keys: list[str], arch: str | None = None) -> MissingOpsError:
        p = self.provenance
        advice = None
        if p.get("source") == "import":  # another device's table: profiling this machine cannot fill it
            advice = (f"this table was measured on {p.get('device', 'another device')}, not here: price them from "
                      f"the table's own entries with the missing-op policy 'estimate' (--missing estimate), "
                      f"or measure them on that device")
        return MissingOpsError(keys, self.profile_command(arch), self.path, advice)

    def profile_command(self, arch: str | None = None) -> str:
        """The command that measures the ops this table lacks (into this same file)."""
        p = self.provenance
        target = f"--arch {arch!r}" if arch else (
            f"--space {p['spaces'][0]}" if p.get("spaces") else "--arch ARCH")
        parts = ["nas latency profile", target, f"--input {p.get('input', 'HxWxC')}"]
        if p.get("classes"):
            parts.append(f"--classes {p['classes']}")
        if p.get("threads", 1) != 1:
            parts.append(f"--threads {p['threads']}")
        if p.get("runtime") == "torch":
            parts.append("--runtime torch")
        parts.append(f"-o {self.path or 'TABLE.csv'}")
        return " ".join(parts)

    # ---- prediction

    def op_ms(self, ops: Sequence[OpInstance], missing: str | None = None) -> tuple[list[float], list[str]]:
        """Each op's measured median (ms) and the keys that were estimated (policy permitting)."""
        policy = missing or self.missing_policy
        out, estimated = [], []
        for op in ops:
            entry = self.entries.get(op.key)
            if entry is not None:
                out.append(entry["median"])
                continue
            if op.type in NO_OP_TYPES:
                out.append(self.composition.overhead_ms)  # nothing runs: no share of the network
                continue
            if policy == "error":
                raise self.missing_error(self.missing(ops))
            out.append(self._estimate(op, policy))
            estimated.append(op.key)
        if estimated:
            warnings.warn(f"latency of {len(estimated)} op(s) estimated by the {policy!r} policy "
                          f"(not measured): {', '.join(estimated[:3])}{' ...' if len(estimated) > 3 else ''}",
                          EstimatedLatencyWarning, stacklevel=3)
        return out, estimated

    def _estimate(self, op: OpInstance, policy: str) -> float:
        if policy == "estimate":
            if self._kernel_estimator is None:
                from nas.latency.estimator import KernelEstimator

                self._kernel_estimator = KernelEstimator(self.entries, self.ops)
            return self._kernel_estimator.estimate(op)
        if self._estimator is None:
            from nas.latency.missing import Estimator

            self._estimator = Estimator(self.entries, self.ops)
        return self._estimator.estimate(op, policy)

    def predict(self, ops: Sequence[OpInstance], missing: str | None = None) -> float:
        """The network's latency in ms.

        Raises:
            MissingOpsError: an op is not in the table and the policy is ``error`` (the
                message lists the missing keys and the command that profiles them).
        """
        c = self.composition
        medians = self._medians
        try:  # the fast path (the search calls this for every trial): every op measured
            total = sum([medians[op.key] for op in ops])
        except KeyError:
            ms, _ = self.op_ms(ops, missing)
            return c.total(ms, weight_mb(ops) if c.per_mb_ms else 0.0)
        extra = c.per_mb_ms * weight_mb(ops) if c.per_mb_ms else 0.0
        return c.overhead_ms + c.offset_ms + c.scale * (total - len(ops) * c.overhead_ms) + extra

    @property
    def _medians(self) -> dict[str, float]:
        if self._median_cache is None or len(self._median_cache) != len(self.entries):
            self._median_cache = {k: e["median"] for k, e in self.entries.items()}
        return self._median_cache

    def breakdown(self, ops: Sequence[OpInstance], missing: str | None = None) -> list[dict]:
        """Per op: key, type, measured median, its share of the network (ms, overhead
        removed and systematic scale applied) and whether it was estimated. The shares plus
        ``overhead + offset`` add up to :meth:`predict`."""
        ms, estimated = self.op_ms(ops, missing)
        flagged = set(estimated)
        return [{"index": i, "key": op.key, "type": op.type, "median_ms": m,
                 "share_ms": self.composition.per_op(m, weight_mb([op])), "estimated": op.key in flagged}
                for i, (op, m) in enumerate(zip(ops, ms))]

    # ---- building and saving

    def with_entries(self, results: dict[str, dict], ops: dict[str, OpInstance]) -> LatencyTable:
        """A copy with measured ``results`` added (or replaced)."""
        return LatencyTable({**self.entries, **results}, {**self.ops, **ops}, dict(self.provenance),
                            self.composition, self.missing_policy, self.path)

    def save(self, path: str | Path) -> None:
        """Write ``path`` (CSV) and its JSON sidecar, atomically each."""
        write_table(Path(path), self.entries, self.ops, self.provenance, self.composition.as_dict())
        self.path = str(path)

    @classmethod
    def from_file(cls, path: str | Path, missing: str | None = None) -> LatencyTable:
        """Load and check a table. Raises LatencyTableError (a ValueError) naming the file and
        the problem when the CSV or its sidecar is missing, corrupt, truncated, holds NaN or
        negative latencies, or when the two do not belong together."""
        entries, ops, provenance = read_table(Path(path))
        composition = Composition.from_dict(provenance.get("composition", {}), str(sidecar_path(path)))
        return cls(entries, ops, provenance, composition, missing, str(path))


class EstimatedLatencyWarning(UserWarning):
    """A prediction used estimated (not measured) op latencies."""


def weight_mb(ops: Iterable[OpInstance]) -> float:
    """Float32 weight megabytes of ``ops`` (BN folded: a conv's BN becomes its bias)."""
    return sum(_op_mb(op) for op in ops)


@functools.lru_cache(maxsize=1 << 16)
def _op_mb(op: OpInstance) -> float:
    return op_params(op) * 4e-6
