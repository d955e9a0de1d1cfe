"""Importing tables measured elsewhere: the stand-alone runner's CSV, and the public
ProxylessNAS (Pixel 1) and Once-for-All (Note10) YAML tables.

Public keys such as ``expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-
stride:2-idskip:0`` are mapped onto this project's ops (``OpInstance``), so a table imported
from them prices our networks directly:

* ProxylessNAS (``mobile_trim.yaml``, values ``count/mean/var``): ``Conv`` is the 3x3
  stride-2 stem (ReLU6), ``expanded_conv`` an inverted residual (``expand`` is the ratio,
  ReLU6), ``Conv_1`` the 1x1 head conv and ``Logits`` global pooling plus the classifier.
* Once-for-All (``{R}_lookup_table.yaml``, values ``count/mean/std``): ``expand`` is the
  hidden channel count, ``se``/``hs`` select squeeze-excite and h-swish (else ReLU);
  ``Conv`` is the stem (h-swish), ``Conv_1`` the 1x1 final expansion, ``AvgPool2D`` the
  pooling, ``Conv_2`` the 1x1 feature mix (bias, no BN, h-swish), ``Logits`` the classifier.

Since ``Logits`` (ProxylessNAS) covers pooling and classifier together, the pooling op gets
0 ms and the classifier the whole entry. The public tables give a mean and a variance, not
percentiles: the imported median is the mean and p10/p90 are mean -/+ 1.2816 sd (a normal
approximation), which the provenance records.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from collections.abc import Callable
from pathlib import Path

from nas.latency.errors import LatencyTableError
from nas.latency.table import Composition, LatencyTable
from nas.ops import OpInstance, op_from_fields
from nas.spec import parse_shape

FORMATS = ("proxylessnas", "ofa", "runner")
MAX_COUNT = 10**9  # measurements behind one entry: more is a damaged file
_Z10 = 1.2815515655446004  # standard normal 90th percentile

_KEY = re.compile(r"^(?P<name>[A-Za-z_0-9]+?)-input:(?P<input>\d+x\d+x\d+)-output:(?P<output>\d+(?:x\d+x\d+)?)"
                  r"(?P<rest>(?:-[a-z]+:\d+)*)$")


def parse_public_key(key: str, where: str) -> tuple[str, tuple, tuple, dict]:
    """(name, input HxWxC, output HxWxC, {option: int}) of a public table key."""
    match = _KEY.match(key)
    if not match:
        raise LatencyTableError(f"{where}: unrecognised key {key!r}")
    out = match["output"]
    output = parse_shape(out) if "x" in out else (1, 1, int(out))
    options = {k: int(v) for k, v in re.findall(r"-([a-z]+):(\d+)", match["rest"])}
    return match["name"], parse_shape(match["input"]), output, options


def _conv(inp, out, kernel, stride, act, bn=True, bias=False) -> OpInstance:
    return OpInstance("conv", inp, out, kernel=kernel, stride=stride, act=act, bn=bn, bias=bias, pad=kernel // 2)


def _ir(inp, out, o: dict, key: str, mid: int, act: str, se: bool) -> OpInstance:
    for name in ("kernel", "stride", "idskip"):
        if name not in o:
            raise LatencyTableError(f"key {key!r} lacks {name}")
    expand = mid / inp[2]
    expand = int(expand) if float(expand).is_integer() else expand
    residual = o["stride"] == 1 and inp[2] == out[2]
    if residual != bool(o["idskip"]):
        raise LatencyTableError(f"key {key!r}: idskip:{o['idskip']} contradicts the shapes (identity shortcut "
                                f"{'possible' if residual else 'impossible'})")
    return op_from_fields({"type": "ir", "input": "x".join(map(str, inp)), "output": "x".join(map(str, out)),
                           "kernel": o["kernel"], "stride": o["stride"], "expand": expand, "mid": mid,
                           "se": se, "act": act, "residual": residual})


def proxyless_ops(key: str, classes_hint: int | None = None) -> list[tuple[OpInstance, float]]:
    """Our ops for one ProxylessNAS key, each with its share (0..1) of the entry's latency."""
    name, inp, out, o = parse_public_key(key, "proxylessnas table")
    if name == "Conv":
        stride = inp[0] // out[0]
        return [(_conv(inp, out, 3, stride, "relu6"), 1.0)]
    if name == "Conv_1":
        return [(_conv(inp, out, 1, 1, "relu6"), 1.0)]
    if name == "Logits":
        gap = OpInstance("gap", inp, (1, 1, inp[2]))
        return [(gap, 0.0), (OpInstance("fc", (1, 1, inp[2]), out, bias=True), 1.0)]
    if name == "expanded_conv":
        mid = inp[2] if o.get("expand") == 1 else int(round(inp[2] * o["expand"]))
        return [(_ir(inp, out, o, key, mid, "relu6", False), 1.0)]
    raise LatencyTableError(f"proxylessnas table: unknown entry type {name!r} in key {key!r}")


def ofa_ops(key: str, classes_hint: int | None = None) -> list[tuple[OpInstance, float]]:
    """Our ops for one Once-for-All MobileNetV3 key (see the module docstring)."""
    name, inp, out, o = parse_public_key(key, "ofa table")
    if name == "Conv":
        return [(_conv(inp, out, 3, inp[0] // out[0], "hswish"), 1.0)]
    if name == "Conv_1":
        return [(_conv(inp, out, 1, 1, "hswish"), 1.0)]
    if name == "AvgPool2D":
        return [(OpInstance("gap", inp, out), 1.0)]
    if name == "Conv_2":
        return [(_conv(inp, out, 1, 1, "hswish", bn=False, bias=True), 1.0)]
    if name == "Logits":
        return [(OpInstance("fc", inp, out, bias=True), 1.0)]
    if name == "expanded_conv":
        act = "hswish" if o.get("hs") else "relu"
        return [(_ir(inp, out, o, key, o["expand"], act, bool(o.get("se"))), 1.0)]
    raise LatencyTableError(f"ofa table: unknown entry type {name!r} in key {key!r}")


def _read_yaml(path: Path) -> dict:
    import yaml

    from nas.strict_parse import load_yaml

    if path.is_dir():
        raise LatencyTableError(f"public latency table {path} is a folder, not a YAML file")
    if not path.is_file():
        raise LatencyTableError(f"public latency table {path} does not exist")
    try:
        data = load_yaml(path.read_bytes())  # safe loading; a key given twice is an error
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise LatencyTableError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise LatencyTableError(f"{path} is not a latency table (expected a mapping of keys to count/mean)")
    return data


def _stats(value, spread_key: str, where: str, share: float) -> dict:
    if not isinstance(value, dict) or "mean" not in value:
        raise LatencyTableError(f"{where}: expected count/mean/{spread_key}, got {value!r}")
    try:
        mean, count = float(value["mean"]), value.get("count", 1)
        sd = float(value.get(spread_key, 0.0))
    except (TypeError, ValueError):
        raise LatencyTableError(f"{where}: count/mean/{spread_key} must be numbers, got {value!r}") from None
    if isinstance(count, bool) or not isinstance(count, (int, float)) or not 1 <= count <= MAX_COUNT \
            or not float(count).is_integer():
        raise LatencyTableError(f"{where}: invalid statistics: count must be a whole number of measurements in "
                                f"[1, {MAX_COUNT}], got {count!r}")
    count = int(count)
    if not all(math.isfinite(v) for v in (mean, sd)) or mean < 0 or sd < 0:
        raise LatencyTableError(f"{where}: invalid statistics: mean and {spread_key} must be finite numbers >= 0 "
                                f"(ms), got mean {mean!r}, {spread_key} {sd!r}")
    sd = math.sqrt(sd) if spread_key == "var" else sd
    mean, sd = mean * share, sd * share
    return {"n": count, "median": mean, "mean": mean, "std": sd, "p10": max(0.0, mean - _Z10 * sd),
            "p90": mean + _Z10 * sd}


@dataclasses.dataclass(frozen=True)
class PublicSource:
    """What is known of a public table's measurement, recorded in the imported provenance."""

    mapper: Callable[[str, int | None], list[tuple[OpInstance, float]]]
    spread_key: str  # "var" or "std"
    device: str
    cpu_model: str
    threads: int | None  # None: the source does not say
    space: str  # our search space whose every member the table prices
    project: str
    upstream: str  # where the file is published
    licence: str
    protocol: str


PUBLIC = {
    "proxylessnas": PublicSource(
        proxyless_ops, "var", "Google Pixel 1", "Qualcomm Snapdragon 821 (Kryo), one big core", 1, "proxylessnas",
        "ProxylessNAS (Cai, Zhu, Han; ICLR 2019), MIT Han Lab",
        "han-cai/files: proxylessnas/mobile_trim.yaml (loaded by mit-han-lab/proxylessnas's LatencyEstimator)",
        "no licence file accompanies the published table; derived research data, redistributed with attribution",
        "TensorFlow Lite, float32, batch 1, one thread on one big core (as the ProxylessNAS and MnasNet papers "
        "measure the Pixel 1); per-block means over repeated runs"),
    "ofa": PublicSource(
        ofa_ops, "std", "Samsung Note10", "not stated by the source", None, "ofa_mobilenet_v3",
        "Once-for-All (Cai et al.; ICLR 2020), MIT Han Lab",
        "the Once-for-All tutorial's note10 latency tables ({R}_lookup_table.yaml, loaded by "
        "mit-han-lab/once-for-all: ofa/nas/efficiency_predictor/latency_lookup_table.py)",
        "Apache-2.0 (the Once-for-All repository that publishes and loads the tables)",
        "TensorFlow Lite, float32, batch 1; per-block means over repeated runs (thread count not stated)"),
}


def import_public(path: str | Path, fmt: str, classes: int | None = None, command: str | None = None) -> LatencyTable:
    """A table from a public ProxylessNAS or Once-for-All YAML file (see the module docstring).
    ``command`` is recorded as the command that re-derives the table."""
    path = Path(path)
    source = PUBLIC[fmt]
    mapper, spread_key = source.mapper, source.spread_key
    entries, ops = {}, {}
    data = _read_yaml(path)
    for key, value in data.items():
        for op, share in mapper(str(key), classes):
            entries[op.key] = _stats(value, spread_key, f"{path} entry {key!r}", share)
            ops[op.key] = op
    stems = [op for op in ops.values() if op.type == "conv" and op.stride == 2 and op.input[2] == 3]
    if not stems:
        raise LatencyTableError(f"{path}: no stem (Conv) entry, so the input shape is unknown")
    classifiers = {op.output[2] for op in ops.values() if op.type == "fc"}
    classes = classes or (classifiers.pop() if len(classifiers) == 1 else None)
    provenance = {
        "device": source.device, "cpu_model": source.cpu_model, "machine": "arm64", "runtime": "TensorFlow Lite",
        "runtime_version": "not stated by the source", "execution_provider": "tflite-cpu",
        "threads": source.threads, "batch": 1, "dtype": "float32", "input": "x".join(map(str, stems[0].input)),
        "classes": classes, "spaces": [source.space], "protocol": source.protocol,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "source": "import",
        # its gaps cannot be measured on this machine: price them from the table's own entries
        "missing_default": "estimate",
        "origin": {"format": fmt, "file": path.name, "project": source.project, "upstream": source.upstream,
                   "licence": source.licence, "entries": len(data),
                   "statistics": "median := mean; p10/p90 := mean -/+ 1.2816 sd (normal approximation)",
                   "composition": "network = sum of its entries (as published; no call overhead)"},
    }
    if command:
        provenance["rederive"] = command
    return LatencyTable(entries, ops, provenance, Composition())


def import_runner(path: str | Path) -> LatencyTable:
    """A table from the stand-alone runner's CSV and its JSON sidecar (checked like any
    table: the runner writes the table format)."""
    from nas.latency.tableio import REQUIRED_PROVENANCE, read_rows, sidecar_path
    from nas.strict_parse import loads_json

    path = Path(path)
    if not path.is_file():
        raise LatencyTableError(f"runner output {path} does not exist")
    side = sidecar_path(path)
    if not side.is_file():
        raise LatencyTableError(f"runner output {path} has no {side} beside it (the runner writes both)")
    try:
        provenance = loads_json(side.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:  # not JSON, not UTF-8, or a key given twice
        raise LatencyTableError(f"{side} is not valid JSON: {exc}") from None
    if not isinstance(provenance, dict) or provenance.get("source") != "runner":
        raise LatencyTableError(f"{side} was not written by the latency runner")
    absent = [k for k in REQUIRED_PROVENANCE if k not in provenance]
    if absent:
        raise LatencyTableError(f"{side}: provenance lacks required field(s) {absent}")
    entries, ops = read_rows(path)
    overhead = provenance.get("overhead", {}).get("median", 0.0)
    provenance["origin"] = {"format": "runner", "file": path.name}
    return LatencyTable(entries, ops, provenance, Composition(overhead_ms=float(overhead)))


def import_table(path: str | Path, fmt: str, classes: int | None = None, command: str | None = None) -> LatencyTable:
    if fmt == "runner":
        return import_runner(path)
    if fmt not in PUBLIC:
        raise LatencyTableError(f"unknown import format {fmt!r}; expected one of {list(FORMATS)}")
    return import_public(path, fmt, classes, command)
