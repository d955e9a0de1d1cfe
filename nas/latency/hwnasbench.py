"""Latency models derived from HW-NAS-Bench's public Raspberry Pi 4 and Pixel 3 measurements.

* FBNet space (:func:`fbnet_table`): HW-NAS-Bench publishes whole-network sums of a per-op
  table; the shared file ``fbnet/fbnet_hwnasbench_recovered_relative_lut.json`` holds that
  table recovered exactly from 5,000 sums, but only *relative* to a per-layer gauge:
  ``latency = all_k3_e1_total_ms + sum_l delta[l][op_l]``. Skip is the cheapest op at every
  layer on both devices, so the table is stored in the gauge where skip costs nothing: each
  op's entry is what choosing it at its layer adds over a skip there (all >= 0), and the
  composition's ``offset_ms`` is the latency of the all-skip network (HW-NAS-Bench's sum for
  the encoding ``[8] * 22``: the stem, the 1x1 convs of the skipped stage transitions and the
  head). The fixed ops (stem, head conv, pooling, classifier, skip convs) carry 0 ms: their
  cost is inside ``offset_ms``, since whole-network sums do not identify it op by op.
* NAS-Bench-201 (:func:`nb201_model`): the measurements are end-to-end, so the model is a
  per-op table of cell edges and adds with graph-context terms (a calibrated model, see
  nas.latency.calibrate) fitted to 10,000 of the 15,625 networks; the other 5,625 validate it
  (the figures are stored in its provenance).

Both re-derive exactly from the shared files (``tools/derive_arm_tables.py``).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from nas.latency.errors import LatencyTableError
from nas.latency.table import Composition, LatencyTable
from nas.ops import resolve_block

FBNET_LUT = Path("fbnet") / "fbnet_hwnasbench_recovered_relative_lut.json"
NB201_CSV = Path("nasbench201") / "nb201_latency_raspi4_pixel3.csv"
DEVICES = {"raspi4": ("Raspberry Pi 4", "Broadcom BCM2711, 4x Cortex-A72"),
           "pixel3": ("Google Pixel 3", "Qualcomm Snapdragon 845 (Kryo 385)")}
PROJECT = "HW-NAS-Bench (Li et al., ICLR 2021), GATECH-EIC"
LICENCE = "MIT (HW-NAS-Bench repository; HELP, whose data the shared files were converted from, is MIT too)"
NB201_TRAIN = 10_000  # networks the NAS-Bench-201 model is fitted on; the rest validate it
NB201_SEED = 0


def _base_provenance(device: str, input_shape: str, classes: int, space: str) -> dict:
    name, cpu = DEVICES[device]
    return {"device": name, "cpu_model": cpu, "machine": "arm64", "runtime": "TensorFlow Lite",
            "runtime_version": "not stated by the source", "execution_provider": "tflite-cpu",
            "threads": None, "batch": 1, "dtype": "float32", "input": input_shape, "classes": classes,
            "spaces": [space], "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "source": "import"}


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise LatencyTableError(f"unknown HW-NAS-Bench device {device!r}; expected one of {sorted(DEVICES)}")


def fbnet_table(lut_path: str | Path, device: str, command: str | None = None) -> LatencyTable:
    """The FBNet-space table of ``device`` (raspi4 or pixel3) at 32x32x3, 100 classes."""
    from nas.space import get_space
    from search_spaces.fbnet import OP_NAMES, STAGES

    _check_device(device)
    path = Path(lut_path)
    try:
        data = json.loads(path.read_text())
        total = float(data[device]["all_k3_e1_total_ms"])
        delta = np.array(data[device]["delta_vs_k3_e1_ms[layer][op]"], dtype=float)
        ops_order = list(data["ops"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LatencyTableError(f"{path} is not HW-NAS-Bench's recovered FBNet table: {exc!r}") from None
    if ops_order != list(OP_NAMES) or delta.shape != (sum(n for _, n in STAGES), len(OP_NAMES)):
        raise LatencyTableError(f"{path}: expected {len(OP_NAMES)} ops {list(OP_NAMES)} per layer for 22 layers")
    skip = OP_NAMES.index("skip")
    added = delta - delta[:, [skip]]  # the gauge where skip costs nothing
    if (added < -1e-9).any():
        raise LatencyTableError(f"{path}: an op is cheaper than skip on {device}; the skip gauge does not apply")
    space = get_space("fbnet", (32, 32, 3), 100)
    entries: dict[str, dict] = {}
    ops: dict = {}

    def put(op, ms: float, where: str) -> None:
        ms = max(float(ms), 0.0)
        if op.key in entries and abs(entries[op.key]["median"] - ms) > 1e-6 * max(1.0, ms):
            raise LatencyTableError(f"{path}: {where} gives {op.key} {ms} ms, another layer "
                                    f"{entries[op.key]['median']}")
        entries[op.key] = {"n": 1, "median": ms, "mean": ms, "std": 0.0, "p10": ms, "p90": ms}
        ops[op.key] = op

    shape = space.input_shape
    for block in space.stem():
        op = resolve_block(block, shape, space.classes)
        put(op, 0.0, "the stem")
        shape = op.output
    layer = 0
    for i, (_, layers) in enumerate(STAGES):
        for j in range(layers):
            for c, name in enumerate(OP_NAMES):
                block = space.layer_block(i, j, name)
                if block is not None:
                    put(resolve_block(block, shape, space.classes), added[layer, c], f"layer {layer} op {name}")
            # later layers of a stage see the stage's output shape, whatever this layer chose
            first = space.layer_block(i, j, OP_NAMES[0])
            shape = resolve_block(first, shape, space.classes).output
            layer += 1
    for block in space.head():
        op = resolve_block(block, shape, space.classes)
        put(op, 0.0, "the head")
        shape = op.output
    offset = total + float(delta[:, skip].sum())
    provenance = _base_provenance(device, "32x32x3", 100, "fbnet")
    provenance.update({
        "protocol": "HW-NAS-Bench's per-op table, CIFAR-100 input, summed per network as HW-NAS-Bench does",
        "origin": {"project": PROJECT, "file": f"{FBNET_LUT.as_posix()} ({device})",
                   "upstream": "GATECH-EIC/HW-NAS-Bench (HW-NAS-Bench-v1_0.pickle, fbnet lookup tables); "
                               "recovered from HELP's data/fbnet/{raspi4,pixel3}.pt sums",
                   "licence": LICENCE, "entries": int(delta.size)},
        "relative": {"offset_ms": offset,
                     "meaning": "offset_ms is the latency of the all-skip network (encoding [8]*22); each "
                                "entry is what its op adds over skipping that layer; stem, head and skip "
                                "convs carry 0 ms because their cost is inside offset_ms",
                     "all_k3_e1_total_ms": total},
    })
    if command:
        provenance["rederive"] = command
    return LatencyTable(entries, ops, provenance, Composition(offset_ms=offset))


def nb201_model(csv_path: str | Path, device: str, command: str | None = None):
    """The NAS-Bench-201 model of ``device``: fitted on :data:`NB201_TRAIN` networks (seeded
    split), validated on the rest; returns the calibrated model."""
    import pandas as pd
    from scipy.stats import kendalltau, spearmanr

    from nas.latency.calibrate import fit_fixed
    from nas.latency.fewshot import REFERENCE_CONFIG, REFERENCE_RIDGE, networks_of

    _check_device(device)
    frame = pd.read_csv(csv_path)
    column = f"{device}_ms"
    if column not in frame.columns or "arch_str" not in frame.columns:
        raise LatencyTableError(f"{csv_path} has no arch_str and {column} columns")
    nets = networks_of("nasbench201", list(frame["arch_str"]))
    y = frame[column].to_numpy(float)
    order = np.random.default_rng(NB201_SEED).permutation(len(nets))
    train, test = order[:NB201_TRAIN], order[NB201_TRAIN:]
    provenance = _base_provenance(device, "32x32x3", 10, "nasbench201")
    model = fit_fixed([nets[i] for i in train], y[train], REFERENCE_CONFIG, REFERENCE_RIDGE, provenance=provenance)
    pred = model.predict_many([nets[i] for i in test])
    rel = np.abs(pred / y[test] - 1)
    model.provenance.update({
        "protocol": "HW-NAS-Bench's end-to-end latencies of the NAS-Bench-201 networks (CIFAR input), as measured",
        "origin": {"project": PROJECT, "file": f"{NB201_CSV.as_posix()} ({column})", "licence": LICENCE,
                   "upstream": "GATECH-EIC/HW-NAS-Bench (HW-NAS-Bench-v1_0.pickle)", "entries": len(frame)},
        "entries": len(model.coef), "source_summary": f"{PROJECT}: {NB201_CSV.name} ({column}), fitted",
        "fit": {"train_networks": len(train), "split_seed": NB201_SEED, "validation_networks": len(test),
                "validation": {"within_10pct": float(np.mean(rel <= 0.10)), "mape": float(np.mean(rel)),
                               "kendall_tau": float(kendalltau(pred, y[test])[0]),
                               "spearman": float(spearmanr(pred, y[test])[0])}},
    })
    model.provenance.pop("date", None)  # the fit is deterministic; a date would make re-derivations differ
    if command:
        model.provenance["rederive"] = command
    return model
