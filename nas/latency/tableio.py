"""A latency table's files: the CSV of op rows and its JSON provenance sidecar, read with
schema checks and written atomically (the table itself and its prediction: nas.latency.table).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path

from nas.latency.errors import LatencyTableError
from nas.latency.runner import STAT_COLUMNS  # the stand-alone runner writes the same columns
from nas.ops import OpInstance, op_from_fields
from nas.spec import SpecError, parse_shape
from nas.strict_parse import loads_json

FORMAT = "nas-latency-table"
FORMAT_VERSION = 1
KIND = "table"
OPTIONAL_COLUMNS = ("spread", "attempts")
FIELD_COLUMNS = tuple(f.name for f in dataclasses.fields(OpInstance))
REQUIRED_PROVENANCE = ("device", "cpu_model", "machine", "runtime", "runtime_version", "execution_provider",
                       "threads", "batch", "dtype", "input", "date")
MAX_REPEATS = 10**9  # the measurement count of one op: more is a damaged file, not a measurement


def sidecar_path(path: str | Path) -> Path:
    """The provenance file beside a table CSV: ``NAME.csv`` -> ``NAME.json``."""
    return Path(path).with_suffix(".json")


def keys_digest(keys: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]


def op_from_row(row: dict) -> OpInstance:
    # a field added to OpInstance after a table was written is absent from its CSV: its default
    return op_from_fields({k: row[k] for k in FIELD_COLUMNS if k in row})


def read_sidecar(path: Path) -> dict:
    side = sidecar_path(path)
    if side.is_dir():
        raise LatencyTableError(f"provenance file {side} of latency table {path} is a folder, not a JSON file")
    if not side.is_file():
        raise LatencyTableError(f"latency table {path} has no provenance file {side} beside it "
                                f"(every table needs its JSON sidecar)")
    try:
        data = loads_json(side.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:  # not JSON, not UTF-8, or a key given twice
        raise LatencyTableError(f"provenance file {side} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LatencyTableError(f"{side} is not a latency table provenance file (format {FORMAT!r} expected)")
    if data.get("format_version") != FORMAT_VERSION:
        raise LatencyTableError(f"{side}: format_version {data.get('format_version')!r} is not supported "
                                f"(expected {FORMAT_VERSION})")
    absent = [k for k in REQUIRED_PROVENANCE if k not in data]
    if absent:
        raise LatencyTableError(f"{side}: provenance lacks required field(s) {absent}")
    try:
        parse_shape(data["input"], "provenance input")
    except SpecError as exc:
        raise LatencyTableError(f"{side}: {exc}") from None
    return data


def _stats(row: dict, where: str) -> dict:
    stats = {}
    for column in (*STAT_COLUMNS, *OPTIONAL_COLUMNS):
        text = row.get(column)
        if column in OPTIONAL_COLUMNS and (text is None or text == ""):
            continue
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise LatencyTableError(f"{where}: column {column!r} must be a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0:
            raise LatencyTableError(f"{where}: column {column!r} must be a finite number >= 0, got {text!r}")
        stats[column] = value
    if not 1 <= stats["n"] <= MAX_REPEATS or not stats["n"].is_integer():
        raise LatencyTableError(f"{where}: n must be a positive integer (measurements, at most {MAX_REPEATS}), "
                                f"got {row['n']!r}")
    stats["n"] = int(stats["n"])
    if not stats["p10"] <= stats["median"] <= stats["p90"]:
        raise LatencyTableError(f"{where}: expected p10 <= median <= p90, got {stats['p10']}, "
                                f"{stats['median']}, {stats['p90']}")
    return stats


def _check_header(path: Path, header: list[str] | None) -> None:
    if not header:
        raise LatencyTableError(f"latency table {path} is empty (no header row)")
    required = ["key", "type", "input", "output", *STAT_COLUMNS]
    absent = [c for c in required if c not in header]
    if absent:
        raise LatencyTableError(f"latency table {path}: header lacks column(s) {absent}; is it a latency table?")
    unknown = [c for c in header if c not in ("key", *FIELD_COLUMNS, *STAT_COLUMNS, *OPTIONAL_COLUMNS)]
    if unknown:
        raise LatencyTableError(f"latency table {path}: unknown column(s) {unknown}")


def read_rows(path: Path) -> tuple[dict, dict]:
    """(entries, ops) of a table CSV, every row checked."""
    entries, ops = {}, {}
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            _check_header(path, reader.fieldnames)
            for line, row in enumerate(reader, start=2):
                where = f"{path} line {line}"
                if None in row or any(v is None for v in row.values()):
                    raise LatencyTableError(f"{where}: expected {len(reader.fieldnames)} columns, got "
                                            f"a different count (truncated or corrupt file?)")
                try:
                    op = op_from_row(row)
                except (SpecError, ValueError, TypeError) as exc:
                    raise LatencyTableError(f"{where}: bad op fields: {exc}") from None
                if op.key != row["key"]:
                    raise LatencyTableError(f"{where}: key {row['key']!r} does not match its fields, "
                                            f"which give {op.key!r}")
                if op.key in entries:
                    raise LatencyTableError(f"{where}: duplicate key {op.key!r}")
                entries[op.key] = _stats(row, where)
                ops[op.key] = op
    except UnicodeDecodeError as exc:
        raise LatencyTableError(f"latency table {path} is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise LatencyTableError(f"latency table {path} is not valid CSV: {exc}") from None
    return entries, ops


def read_table(path: Path) -> tuple[dict, dict, dict]:
    """(entries, ops, provenance) of a table, with the CSV and sidecar checked against each other."""
    if path.is_dir():
        raise LatencyTableError(f"latency table {path} is a folder; expected a table CSV (with its .json beside it)")
    if not path.is_file():
        raise LatencyTableError(f"latency table {path} does not exist")
    provenance = read_sidecar(path)
    entries, ops = read_rows(path)
    side = sidecar_path(path)
    if provenance.get("rows") is not None and provenance["rows"] != len(entries):
        raise LatencyTableError(f"{path} has {len(entries)} rows but its provenance {side} says "
                                f"{provenance['rows']}: the files do not belong together (or one was cut short)")
    if provenance.get("keys_sha256") and provenance["keys_sha256"] != keys_digest(entries):
        raise LatencyTableError(f"{path} holds other op keys than its provenance {side} was written for: "
                                f"the files do not belong together")
    return entries, ops, provenance


def write_table(path: str | Path, entries: dict[str, dict], ops: dict[str, OpInstance], provenance: dict,
                composition: dict) -> None:
    """Write ``path`` (CSV) and its JSON sidecar, atomically each: a failed write (a full disk,
    say) leaves no partial file and keeps an earlier table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(entries, key=lambda k: (ops[k].type, ops[k].input, k))
    extra = [c for c in OPTIONAL_COLUMNS if any(c in entries[k] for k in keys)]
    columns = ["key", *FIELD_COLUMNS, *STAT_COLUMNS, *extra]
    tmp = path.with_name(path.name + ".tmp")
    side_tmp = path.with_name(path.name + ".json.tmp")
    sidecar = {**provenance, "format": FORMAT, "format_version": FORMAT_VERSION, "kind": KIND,
               "rows": len(keys), "keys_sha256": keys_digest(keys), "composition": composition}
    try:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for key in keys:
                stats = {c: _format(entries[key].get(c, "")) for c in (*STAT_COLUMNS, *extra)}
                writer.writerow({"key": key, **ops[key].fields(), **stats})
        side_tmp.write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    except OSError as exc:  # a full disk, say: leave no partial file behind, keep the old table
        for partial in (tmp, side_tmp):
            partial.unlink(missing_ok=True)
        raise LatencyTableError(f"could not write latency table {path}: {exc.strerror or exc}") from None
    tmp.replace(path)
    side_tmp.replace(sidecar_path(path))


def _format(value):
    return f"{value:.6g}" if isinstance(value, float) else value
