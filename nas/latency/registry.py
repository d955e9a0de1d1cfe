"""Shipped latency tables, addressable by short name.

Every table in the shipped folder is known by its file name without ``.csv``
(``pixel1-proxylessnas`` is ``latency_tables/pixel1-proxylessnas.csv``); single-file latency
models (a ``.json`` whose ``format`` is a registered model kind, e.g. a calibrated model) by
theirs without ``.json``. Configs (``latency: pixel1-proxylessnas``) and commands
(``--table pixel1-proxylessnas``) accept such a name wherever they accept a path:
:func:`resolve_table` is the one place that tells them apart.

The shipped folder is ``latency_tables/`` beside the ``nas`` package (the repository root:
the project is installed in place with ``pip install -e``), so a name resolves from any
working directory. ``NAS_LATENCY_TABLES`` names another folder instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from nas.latency.errors import LatencyTableError
from nas.latency.table import LatencyTable
from nas.latency.tableio import FORMAT, sidecar_path
from nas.names import UnsafeNameError, check_name

ENV = "NAS_LATENCY_TABLES"
_SUFFIXES = (".csv", ".json")


def _load_calibrated(path: Path, missing: str | None = None):
    from nas.latency.calibrate import CalibratedLatencyModel

    return CalibratedLatencyModel.from_file(path)  # predicts every op: no missing-op policy applies


# kind -> loader(path, missing=...): nas.latency.load_latency_model dispatches on it, and a
# shipped .json is a latency model when its format is one of these
MODEL_KINDS: dict[str, Callable[..., object]] = {"table": LatencyTable.from_file,
                                                 "nas-calibrated-latency": _load_calibrated}


def register_model_kind(kind: str, loader: Callable[..., object]) -> None:
    """Register ``loader(path, missing=...)`` for sidecars whose ``kind`` is ``kind``."""
    if kind in MODEL_KINDS:
        raise ValueError(f"latency model kind {kind!r} is already registered")
    MODEL_KINDS[kind] = loader


def tables_dir() -> Path:
    """The folder of shipped tables (see the module docstring)."""
    override = os.environ.get(ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "latency_tables"


def is_name(ref: str | Path) -> bool:
    """Whether ``ref`` is a short name rather than a path: no folder and no file suffix."""
    if isinstance(ref, Path):
        return False
    return "/" not in ref and os.sep not in ref and not ref.endswith(_SUFFIXES)


def _model_files(folder: Path) -> dict[str, Path]:
    """name -> file of every latency model in ``folder``."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.suffix == ".csv" and sidecar_path(path).is_file():
            found[path.stem] = path
        elif path.suffix == ".json" and not path.with_suffix(".csv").exists() and _model_format(path):
            found.setdefault(path.stem, path)
    return found


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _model_format(path: Path) -> str | None:
    """The model kind of a single-file model (its ``format`` field, if registered)."""
    fmt = _read_json(path).get("format")
    return fmt if fmt in MODEL_KINDS and fmt != FORMAT else None


def known_names() -> list[str]:
    return sorted(_model_files(tables_dir()))


def resolve_table(ref: str | Path) -> Path:
    """The file of a latency model given by path or by short name.

    A path (anything with a folder or a ``.csv``/``.json`` suffix) is returned as it is; its
    loader reports a missing file. A name must be a safe name and one of the shipped tables.

    Raises:
        LatencyTableError: an unsafe or unknown name (the message lists the known names).
    """
    if not is_name(ref):
        return Path(ref)
    try:
        check_name(ref, "latency table name")
    except UnsafeNameError as exc:
        raise LatencyTableError(str(exc)) from None
    files = _model_files(tables_dir())
    if ref not in files:
        raise LatencyTableError(f"unknown latency table {ref!r}; shipped tables ({tables_dir()}): "
                                f"{', '.join(sorted(files)) or 'none'}; or give the path of a table CSV")
    return files[ref]


def describe(path: Path) -> dict:
    """One listing row: name, device, runtime, space, input shape, entries, source."""
    side = _read_json(sidecar_path(path) if path.suffix == ".csv" else path)
    origin = side.get("origin") or {}
    if side.get("source") == "import":
        source = f"{origin.get('project', origin.get('format', 'imported'))}: {origin.get('file', '?')}"
    elif side.get("source") == "profile":
        source = f"measured by this project on {side.get('device', '?')} (nas latency profile)"
    else:
        source = side.get("source_summary") or side.get("source") or side.get("format", "?")
    spaces = side.get("spaces") or ([side["space"]] if side.get("space") else [])
    return {"name": path.stem, "device": side.get("device"), "runtime": side.get("runtime"),
            "threads": side.get("threads"), "space": ", ".join(spaces) or None, "input": side.get("input"),
            "entries": side.get("rows", side.get("entries")), "source": source, "path": str(path)}


def list_tables() -> list[dict]:
    """A row per latency model in the shipped folder, by name (see :func:`describe`)."""
    return [describe(path) for path in _model_files(tables_dir()).values()]
