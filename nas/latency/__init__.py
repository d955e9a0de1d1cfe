"""Latency: per-op lookup tables measured on a device, and the predictor the search calls.

Public entry point::

    from nas.latency import load_latency_model
    model = load_latency_model("latency_tables/mobilenet_v2-28x28x1-ort-xeon2c.csv")
    model.check_input((28, 28, 1))      # ValueError if measured for another input shape
    ms = model.predict(ops)             # ops = nas.ops.resolve(spec); milliseconds
    rows = model.breakdown(ops)         # per-op shares (ms)
    model.provenance                    # dict: device, runtime, input, protocol, ...

Dispatch, in one place: a ``.json`` path is a single-file model whose ``format`` field
names its kind (``nas-calibrated-latency``: nas.latency.calibrate); any other path is a table
CSV whose JSON sidecar's ``kind`` field names it (``table``). Both look the kind up in
:data:`MODEL_KINDS` (kept in nas.latency.registry beside the shipped names); a new
model type registers a loader with :func:`register_model_kind` and loads through the same
function.
"""

from __future__ import annotations

import json
from pathlib import Path

from nas.latency.errors import LatencyTableError, MissingOpsError
from nas.latency.registry import MODEL_KINDS, register_model_kind, resolve_table
from nas.latency.table import EstimatedLatencyWarning, LatencyTable
from nas.latency.tableio import sidecar_path


def load_latency_model(path: str | Path, missing: str | None = None):
    """Load the latency model at ``path`` (a table CSV; its JSON sidecar says its kind), or
    the shipped one of that short name (``pixel1-proxylessnas``: nas.latency.registry).

    The returned object has ``predict(ops) -> float`` (ms), ``breakdown(ops)``,
    ``provenance`` (dict with ``input``) and ``check_input(shape)``; missing ops raise
    :class:`MissingOpsError` (a ValueError) unless ``missing`` is ``nearest``,
    ``interpolate`` or ``estimate``; ``None`` is the table's own default (``estimate`` for a
    table imported from another device, else ``error``).

    Raises:
        LatencyTableError: the file or its sidecar is missing, corrupt or of an unknown kind.
    """
    path = resolve_table(path)
    side, field = (path, "format") if path.suffix == ".json" else (sidecar_path(path), "kind")
    kind = "table"
    if side.is_file():
        try:
            kind = json.loads(side.read_text()).get(field, "table")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
            raise LatencyTableError(f"{side} is not valid JSON: {exc}") from None
    elif path.suffix == ".json":
        raise LatencyTableError(f"latency model {path} does not exist")
    if kind not in MODEL_KINDS:
        raise LatencyTableError(f"{side}: unknown latency model kind {kind!r}; expected one of {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[kind](path, missing=missing)


__all__ = ["EstimatedLatencyWarning", "LatencyTable", "LatencyTableError", "MissingOpsError", "MODEL_KINDS",
           "load_latency_model", "register_model_kind"]
