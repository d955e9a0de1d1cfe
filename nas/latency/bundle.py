"""``nas latency bundle``: the ONNX models of a space's ops and a manifest, in one zip, for
the stand-alone runner (nas/latency/runner.py) on a device without PyTorch.

Layout: ``manifest.json`` (format, the op-field column names, per op its key, file and
fields, and the provenance of what was bundled: input shape, classes, spaces, opset, git
revision) and ``ops/NNNN.onnx``, one batch-1 model per op with batch norm folded.
"""

from __future__ import annotations

import datetime
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from nas.latency.tableio import FIELD_COLUMNS
from nas.ops import OpInstance

BUNDLE_FORMAT = "nas-latency-bundle"


def write_bundle(ops: Iterable[OpInstance], path: str | Path, provenance: dict, progress: bool = True) -> int:
    """Export every op of ``ops`` into the zip ``path``; returns the op count."""
    from nas.export.to_onnx import OPSET, export_ops

    ops = sorted(set(ops), key=lambda o: (o.type, o.input, o.key))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = []
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i, op in enumerate(tqdm(ops, desc="exporting", unit="op", disable=not progress)):
            name = f"ops/{i:04d}.onnx"
            archive.writestr(name, export_ops([op]).SerializeToString())
            entries.append({"key": op.key, "file": name, "fields": op.fields()})
        manifest = {"format": BUNDLE_FORMAT, "version": 1, "columns": list(FIELD_COLUMNS), "ops": entries,
                    "provenance": {**provenance, "opset": OPSET, "bn_folded": True,
                                   "bundled": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}}
        archive.writestr("manifest.json", json.dumps(manifest, indent=1))
    tmp.replace(path)
    return len(entries)
