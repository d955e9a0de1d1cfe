"""The model card of an export: ``card.json`` (machine-readable) and ``README.md`` (for people).

Both say, for each format, test accuracy, latency measured on this machine, the latency the
device table predicts, size on disk and how far its outputs are from PyTorch's; and they say
plainly when a reduced-precision format is slower than fp32 here.
"""

from __future__ import annotations

from typing import Any

FORMAT_TITLES = {"pytorch": "PyTorch (eager, fp32)", "fp32": "ONNX fp32 (BN folded)", "int8": "ONNX int8 (QDQ)",
                 "fp16": "ONNX fp16"}


def speed_notes(formats: dict[str, dict], cpu: str) -> list[str]:
    """One plain sentence per reduced-precision format that is slower than fp32 here."""
    notes = []
    base = formats["fp32"]["latency_ms"]["median"]
    for name in ("int8", "fp16"):
        entry = formats.get(name)
        if not entry:
            continue
        own = entry["latency_ms"]["median"]
        if own > base:
            notes.append(f"{name} is SLOWER than fp32 on this CPU ({cpu}): {own:.4f} ms against {base:.4f} ms "
                         f"median ({own / base:.2f}x the fp32 time, ONNX Runtime, 1 thread, batch 1). "
                         f"Its only gain here is size; deploy fp32 unless the target device runs {name} faster.")
    return notes


def int8_kernel_notes(int8: dict, options) -> list[str]:
    """Say how much of the int8 graph ONNX Runtime runs as integer kernels, when not all of it."""
    ops = int8.get("runtime_ops") or {}
    fused, floating = ops.get("QLinearConv", 0), ops.get("Conv", 0)
    if not floating:
        return []
    hint = (" ONNX Runtime's CPU kernels fuse more of a U8S8 graph; try --int8-scheme u8s8 (and see "
            "benchmarks/export.py for both schemes measured here)." if options.scheme == "s8s8" else "")
    return [f"In the int8 ({options.scheme.upper()}) model as ONNX Runtime optimises it, {fused} convolutions run as "
            f"integer kernels (QLinearConv) but {floating} stay in float between dequantize and quantize "
            f"nodes, which costs time.{hint}"]


def accuracy_notes(formats: dict[str, dict], limit_points: float = 1.0) -> list[str]:
    notes = []
    fp32 = formats["fp32"]["test_accuracy"]
    for name in ("int8", "fp16"):
        entry = formats.get(name)
        if entry is None:
            continue
        drop = 100 * (fp32 - entry["test_accuracy"])
        if drop > limit_points:
            notes.append(f"{name} loses {drop:.2f} accuracy points against fp32 on the test set "
                         f"(more than {limit_points:g}); consider another calibration or fp32.")
    return notes


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _size(n: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _table(card: dict[str, Any]) -> list[str]:
    lines = ["| format | file | test accuracy | measured latency ms (median, p10-p90) | vs fp32 | "
             "predicted ms (device table) | size | max abs diff vs PyTorch | top-1 agreement |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in card["formats"].items():
        lat = entry.get("latency_ms")
        measured = "n/a" if lat is None else f"{lat['median']:.4f} ({lat['p10']:.4f}-{lat['p90']:.4f})"
        ratio = entry.get("speedup_vs_fp32")
        speed = "n/a" if ratio is None else f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x SLOWER"
        if name == "fp32":
            speed = "1.00x"
        predicted = _ms(entry.get("predicted_latency_ms"))
        if name in ("int8", "fp16"):
            predicted = "n/a (fp32 table)"
        diff = entry.get("max_abs_diff")
        agreement = entry.get("top1_agreement")
        lines.append(f"| {FORMAT_TITLES.get(name, name)} | `{entry['file']}` | {entry['test_accuracy']:.2%} | "
                     f"{measured} | {speed} | {predicted} | {_size(entry.get('size_bytes'))} | "
                     f"{'reference' if diff is None else f'{diff:.2e}'} | "
                     f"{'reference' if agreement is None else f'{agreement:.2%}'} |")
    return lines


def render_readme(card: dict[str, Any]) -> str:
    """README.md of an export folder."""
    arch, pre, measured = card["arch"], card["preprocessing"], card["measured_on"]
    source = card.get("source") or {}
    origin = (f"trial {source['trial']} of the run `{source['run_folder']}` ({source['chosen_by']})"
              if source else "given directly (no search run)")
    weights = card["weights"]
    lines = [f"# Exported network {arch['arch_id']}", "",
             f"Chosen: {origin}.", "",
             f"Spec: `{arch['spec_string']}`", "",
             f"Input {arch['input']} (HxWxC), {arch['classes']} classes; {arch['params']:,} parameters, "
             f"{arch['macs'] / 1e6:.2f} M multiply-accumulates.", "",
             f"Weights: {weights['description']}.", "",
             "## Formats", "", *_table(card), "",
             f"Test accuracy on {card['dataset']['test_images']} {card['dataset']['name']} test images. "
             f"Latency measured on this machine ({measured['cpu_model']}, {measured['machine']}) with ONNX Runtime "
             f"{measured['runtime_version']}, {measured['threads']} thread, batch 1, the latency tables' protocol "
             f"(graph optimisations up to `{measured['protocol'].get('optimization', 'all')}`, median of "
             f"{measured['protocol']['repeats']} timed calls after {measured['protocol']['warmup']} "
             f"warm-up calls, formats measured side by side); one session call costs "
             f"{measured['overhead_ms']:.4f} ms of that.", "",
             f"Predicted latency: {card['predicted']['description']}.", "",
             f"Differences are max absolute differences of the logits from PyTorch's on "
             f"{card['checks']['parity_images']} test images.", ""]
    if card["notes"]:
        lines += ["## Notes", "", *[f"- {note}" for note in card["notes"]], ""]
    lines += ["## Running it (only numpy and onnxruntime needed)", "",
              "Inputs are float32 NCHW tensors, normalised per channel: "
              f"`x = (pixels / 255 - mean) / std` with mean {pre['mean']} and std {pre['std']}.", "",
              "```python", "import json, numpy as np, onnxruntime as ort",
              "card = json.load(open('card.json'))",
              "pre = card['preprocessing']",
              "session = ort.InferenceSession('model.onnx', providers=['CPUExecutionProvider'])",
              "# images: uint8 array of shape (N, H, W, C), as in the training data",
              "x = (images.astype(np.float32) / 255 - pre['mean']) / pre['std']",
              "x = x.transpose(0, 3, 1, 2).astype(np.float32)",
              "logits = session.run(None, {pre['input_name']: x})[0]",
              "```", "",
              "`sample.npz` holds a few normalised test images (`input`), their labels and PyTorch's logits; "
              "`python -m nas.export.check .` (or `python export_check.py .` with the copy in this folder) runs "
              "every format on them with onnxruntime alone and checks the fp32 model against PyTorch's logits.", ""]
    return "\n".join(lines)
