"""The export of a trained network: the output folder, every format written, verified against
PyTorch and measured, and the card; plus the device table's prediction for a network chosen
from a run (its weights come from :mod:`nas.export.retrain`).

:func:`export_model` writes every format of an already trained network (one trained
elsewhere too)::

    card = export_model(model, spec, dataset, "exports/ref")

An export folder holds ``arch.json`` (the spec), ``model.pt`` (state_dict; load it with
``torch.load(path, weights_only=True)``), ``model.onnx``, ``model.int8.onnx``,
``model.fp16.onnx``, ``card.json`` and ``README.md`` (accuracy, latency, size and parity of
each format), ``sample.npz`` (a few test inputs with PyTorch's logits) and ``export_check.py``
(a copy of :mod:`nas.export.check`: it verifies the folder with onnxruntime and numpy alone).

Test accuracy is measured once, for the final report; nothing is selected on it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from nas.data import Dataset
from nas.export import verify
from nas.export.card import accuracy_notes, int8_kernel_notes, render_readme, speed_notes
from nas.export.quantize import Int8Options, convert_fp16, quantize_int8
from nas.export.selection import ExportError, Selection
from nas.export.to_onnx import export_onnx
from nas.folders import unwritable_reason, written_whole
from nas.latency import runner
from nas.ops import count_macs, count_params, resolve
from nas.spec import ArchSpec

FORMAT_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
OUTPUT_FILES = ("arch.json", "model.pt", *FORMAT_FILES.values(), "card.json", "README.md", "sample.npz",
                "export_check.py")
FP32_TOLERANCE = 1e-4  # max abs difference of fp32 ONNX logits from PyTorch's
INT8_MAX_DROP_POINTS = 1.0
CARD_VERSION = 1

__all__ = ["ExportError", "ExportOptions", "FORMAT_FILES", "OUTPUT_FILES", "export_model", "predict_latency",
           "prepare_output"]


@dataclass(frozen=True)
class ExportOptions:
    """How an export is verified and measured.

    ``calibration_images``: training images that calibrate the int8 activation ranges;
    ``parity_images``: test images on which each format's logits are compared with PyTorch's;
    ``sample_images``: how many of those are stored in sample.npz for the torch-free check;
    ``protocol``: the latency protocol (default: the tables' own); ``overwrite``: replace an
    earlier export in the output folder instead of refusing.
    """

    int8: Int8Options = field(default_factory=Int8Options)
    calibration_images: int = 512
    parity_images: int = 256
    sample_images: int = 16
    protocol: runner.Protocol = field(default_factory=runner.Protocol)
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in ("calibration_images", "parity_images", "sample_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


# --------------------------------------------------------------------------------------
# output folder


def prepare_output(folder: str | Path, overwrite: bool = False) -> Path:
    """Create ``folder`` and make sure it can be written, before any work is done.

    Raises:
        ExportError: the folder cannot be created or written, is a file, or already holds an
            export (unless ``overwrite``), so that nothing earlier is lost silently.
    """
    folder = Path(folder)
    reason = unwritable_reason(folder)
    if reason:
        raise ExportError(f"output folder {str(folder)!r} is not writable: {reason}")
    existing = [name for name in OUTPUT_FILES if (folder / name).exists()]
    if existing and not overwrite:
        # card.json is written last: without it the export was interrupted and nothing in it is checked
        what = "an export" if "card.json" in existing else "an interrupted export (no card.json)"
        raise ExportError(f"output folder {str(folder)!r} already holds {what} ({', '.join(existing)}); "
                          "choose another folder or pass --overwrite to replace it")
    return folder


# --------------------------------------------------------------------------------------
# the export of a trained network


def calibration_inputs(dataset: Dataset, count: int, seed: int = 0) -> np.ndarray:
    """``count`` training images (a seeded random choice, never test images) as model inputs."""
    n = len(dataset.train)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:min(count, n)]
    return dataset.normalize(dataset.train.images[order.sort().values]).numpy()


def _write_formats(model: nn.Module, spec: ArchSpec, dataset: Dataset, folder: Path,
                   options: ExportOptions) -> dict[str, Path]:
    paths = {name: folder / file for name, file in FORMAT_FILES.items()}
    export_onnx(model, spec.input, paths["fp32"], dynamic_batch=True)
    quantize_int8(paths["fp32"], paths["int8"], calibration_inputs(dataset, options.calibration_images),
                  options.int8)
    convert_fp16(paths["fp32"], paths["fp16"])
    return paths


def _verify(model: nn.Module, dataset: Dataset, paths: dict[str, Path], options: ExportOptions,
            folder: Path) -> tuple[dict[str, dict], int]:
    """Accuracy and parity of every format; writes sample.npz. Returns (formats, parity images)."""
    inputs = verify.normalized(dataset, dataset.test, options.parity_images)
    reference = verify.torch_logits(model, inputs)
    formats: dict[str, dict] = {"pytorch": {"file": "model.pt", "size_bytes": (folder / "model.pt").stat().st_size,
                                            "test_accuracy": verify.torch_accuracy(model, dataset, dataset.test)}}
    for name, path in paths.items():
        sess = verify.session(path)
        formats[name] = {"file": path.name, "size_bytes": path.stat().st_size,
                         "test_accuracy": verify.onnx_accuracy(sess, dataset, dataset.test),
                         **verify.compare(verify.run_onnx(sess, inputs), reference),
                         "runtime_ops": verify.optimized_op_counts(path, options.protocol.optimization)}
    k = min(options.sample_images, len(inputs))
    np.savez_compressed(folder / "sample.npz", input=inputs[:k], logits=reference[:k],
                        labels=dataset.test.labels[:k].numpy())
    return formats, len(inputs)


def _measure(paths: dict[str, Path], formats: dict[str, dict], protocol: runner.Protocol) -> dict:
    timings = verify.measure_latency(paths, protocol)
    base = timings["fp32"]["median"]
    for name in paths:
        t = timings[name]
        formats[name]["latency_ms"] = {k: t[k] for k in ("median", "p10", "p90", "mean", "std", "n")}
        formats[name]["speedup_vs_fp32"] = base / t["median"]
    return timings[runner.OVERHEAD_KEY]


def _predicted(latency: dict | None, formats: dict[str, dict]) -> dict:
    latency = dict(latency or {})
    ms = latency.get("latency_ms")
    formats["fp32"]["predicted_latency_ms"] = ms
    if ms is None:
        latency.setdefault("description", "not available (no device table)")
    else:
        latency.setdefault("description", f"{ms:.4f} ms for the fp32 network ({latency.get('source', 'table')})")
    return latency


def _arch_record(spec: ArchSpec) -> dict[str, Any]:
    ops = resolve(spec)
    return {"arch_id": spec.arch_id, "spec_string": spec.to_string(), "input": "x".join(map(str, spec.input)),
            "classes": spec.classes, "params": count_params(ops), "macs": count_macs(ops)}


def _checks(formats: dict[str, dict], proto: onnx.ModelProto, parity_images: int) -> dict[str, Any]:
    drop = 100 * (formats["fp32"]["test_accuracy"] - formats["int8"]["test_accuracy"])
    diff = formats["fp32"]["max_abs_diff"]
    return {"parity_images": parity_images,
            "fp32_parity": {"tolerance": FP32_TOLERANCE, "max_abs_diff": diff, "passed": diff <= FP32_TOLERANCE},
            "int8_accuracy_drop_points": drop, "int8_within_1_point": drop <= INT8_MAX_DROP_POINTS,
            "batchnorm_nodes": sum(n.op_type == "BatchNormalization" for n in proto.graph.node),
            "batchnorm_nodes_after_conv": len(verify.unfolded_batchnorms(proto)),
            "onnx_checker": "passed", "dynamic_batch": _dynamic_batch(proto)}


def _dynamic_batch(proto: onnx.ModelProto) -> bool:
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    return bool(dim.dim_param) and not dim.HasField("dim_value")


def _measured_on(protocol: runner.Protocol, overhead: dict) -> dict[str, Any]:
    prov = runner.device_provenance(protocol, "CPUExecutionProvider")
    keep = ("device", "cpu_model", "machine", "system", "runtime", "runtime_version", "execution_provider",
            "threads", "batch", "protocol", "date")
    return {**{k: prov[k] for k in keep}, "overhead_ms": overhead["median"]}


def _card(spec: ArchSpec, dataset: Dataset, paths: dict[str, Path], formats: dict[str, dict], parity_images: int,
          options: ExportOptions, overhead: dict, *, predicted: dict | None, source: dict | None,
          weights: dict | None) -> dict[str, Any]:
    measured_on = _measured_on(options.protocol, overhead)
    card = {"card_version": CARD_VERSION, "arch": _arch_record(spec), "source": source,
            "weights": weights or {"description": "given by the caller"},
            "dataset": {"name": dataset.name, "source": dataset.source, "test_images": len(dataset.test)},
            "preprocessing": {"input_name": onnx_input_name(paths["fp32"]), "layout": "NCHW", "dtype": "float32",
                              "formula": "(pixels / 255 - mean) / std", "mean": list(dataset.mean),
                              "std": list(dataset.std)},
            "predicted": _predicted(predicted, formats), "measured_on": measured_on,
            "int8": options.int8.to_dict(), "formats": formats,
            "checks": _checks(formats, onnx.load(str(paths["fp32"])), parity_images)}
    card["notes"] = (speed_notes(formats, measured_on["cpu_model"]) + int8_kernel_notes(formats["int8"], options.int8)
                     + accuracy_notes(formats, INT8_MAX_DROP_POINTS))
    if not card["checks"]["fp32_parity"]["passed"]:
        card["notes"].insert(0, f"fp32 ONNX logits differ from PyTorch's by {formats['fp32']['max_abs_diff']:.2e}, "
                                f"more than the {FP32_TOLERANCE:g} tolerance: the export is NOT faithful")
    return card


def export_model(model: nn.Module, spec: ArchSpec, dataset: Dataset, folder: str | Path, *,
                 options: ExportOptions | None = None, predicted: dict | None = None,
                 source: dict | None = None, weights: dict | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write, verify and measure every format of a trained ``model`` of ``spec`` in ``folder``.

    ``predicted`` describes the device table's prediction (``latency_ms``, ``source``,
    ``device``); ``source`` and ``weights`` are recorded in the card as given. Returns the
    card (also written as card.json and README.md).

    Raises:
        ExportError: the output folder is unusable (see :func:`prepare_output`), or the model
            does not match the dataset's input shape and classes.
    """
    options = options or ExportOptions()
    folder = prepare_output(folder, options.overwrite)
    if spec.input != dataset.input_shape or spec.classes != dataset.classes:
        raise ExportError(f"architecture is for {'x'.join(map(str, spec.input))} with {spec.classes} classes but "
                          f"{dataset.name} is {'x'.join(map(str, dataset.input_shape))} with {dataset.classes}")
    model = model.float().to(memory_format=torch.contiguous_format).eval()
    (folder / "arch.json").write_text(spec.to_json(indent=2) + "\n")
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.pt")
    log("writing model.onnx (batch norm folded), model.int8.onnx (calibrating) and model.fp16.onnx")
    paths = _write_formats(model, spec, dataset, folder, options)
    log(f"verifying against PyTorch and measuring test accuracy on {len(dataset.test)} images")
    formats, parity_images = _verify(model, dataset, paths, options, folder)
    log("measuring latency (ONNX Runtime, 1 thread, formats side by side)")
    overhead = _measure(paths, formats, options.protocol)
    card = _card(spec, dataset, paths, formats, parity_images, options, overhead,
                 predicted=predicted, source=source, weights=weights)
    shutil.copyfile(Path(__file__).with_name("check.py"), folder / "export_check.py")
    with written_whole(folder / "README.md") as path:
        path.write_text(render_readme(card))
    # Last, and whole: a card under its own name means every file it describes is there.
    with written_whole(folder / "card.json") as path:
        path.write_text(json.dumps(card, indent=2) + "\n")
    return card


def onnx_input_name(path: Path) -> str:
    return onnx.load(str(path), load_external_data=False).graph.input[0].name


# --------------------------------------------------------------------------------------
# from a search run


def predict_latency(selection: Selection) -> dict[str, Any]:
    """The device table's prediction for the chosen network (ms): computed afresh with the
    run's table when it loads, else the value the search recorded with it."""
    from nas.latency.deployment import price_for_config  # at latency.input, as the search priced it

    table = selection.config.latency.table
    try:
        config = selection.config
        ms, model = price_for_config(config.latency, config.space.name, config.space.options, selection.spec)
    except (ValueError, OSError, TypeError) as exc:
        reason = str(exc).splitlines()[0][:200]
        return {"latency_ms": selection.predicted_ms, "table": table, "device": None,
                "source": f"recorded by the search with table {table!r}, which does not load now: {reason}"}
    device = (getattr(model, "provenance", None) or {}).get("device")
    return {"latency_ms": ms, "table": table, "device": device,
            "source": f"table {table!r}" + (f", device {device!r}" if device else "")}
