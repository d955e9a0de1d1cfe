"""Check an export folder with onnxruntime and numpy alone (no PyTorch, no project code).

Usage (in the project, or with the copy that every export folder carries)::

    python -m nas.export.check EXPORT_DIR          # or: python export_check.py EXPORT_DIR

For every ONNX file named in card.json it opens an ONNX Runtime session, runs the stored
test inputs of sample.npz through it (a batch larger than 1, so the dynamic batch dimension
is exercised too) and compares the logits with PyTorch's, stored beside them. It fails when
a file is missing or does not load, when outputs have the wrong shape or are not finite, or
when the fp32 model differs from PyTorch by more than the card's tolerance. int8 and fp16
differences are reported, not judged: they depend on the CPU's integer and half kernels.

This file imports only the standard library, numpy and onnxruntime, so that it can be copied
to a device next to the exported models.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

FORMATS = ("fp32", "int8", "fp16")


class CheckError(Exception):
    """The folder is not a usable export."""


def _read(folder: str) -> tuple:
    card_path, sample_path = os.path.join(folder, "card.json"), os.path.join(folder, "sample.npz")
    for path in (card_path, sample_path):
        if not os.path.isfile(path):
            raise CheckError(f"{path} is missing: {folder!r} is not an export folder (written by `nas export`)")
    with open(card_path, "rb") as f:
        try:
            card = json.loads(f.read(), object_pairs_hook=_unique_keys)
        except ValueError as exc:  # not JSON, not UTF-8 text, or a key given twice
            raise CheckError(f"{card_path} is not valid JSON: {exc}") from None
    _check_card(card, card_path)
    try:
        with np.load(sample_path, allow_pickle=False) as sample:  # arrays only: a pickle could run code
            absent = [k for k in ("input", "logits", "labels") if k not in sample.files]
            if absent:
                raise CheckError(f"{sample_path} lacks the array(s) {absent}; expected input, logits and labels")
            data = {k: sample[k] for k in ("input", "logits", "labels")}
    except CheckError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, OSError, BadZipFile, ... for a bad file
        raise CheckError(f"{sample_path} is not a readable array archive (.npz of plain arrays): {exc}") from None
    return card, data


def _unique_keys(pairs: list) -> dict:
    """A JSON object whose keys are all different (a repeated key would hide the first value)."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r} (given more than once in one object)")
        result[key] = value
    return result


def _check_card(card, card_path: str) -> None:
    """The parts of card.json the check uses: every model a plain file name in the folder,
    and a finite fp32 tolerance."""
    if not isinstance(card, dict) or not isinstance(card.get("formats"), dict):
        raise CheckError(f"{card_path}: expected an object with a 'formats' object (format -> file), "
                         f"got {type(card).__name__ if not isinstance(card, dict) else card.get('formats')!r}")
    for name, entry in card["formats"].items():
        file = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(file, str) or not file or os.path.basename(file) != file or file in (".", ".."):
            raise CheckError(f"{card_path}: formats.{name}.file must be a file name inside the export folder, "
                             f"got {file!r}")
    try:
        tolerance = card["checks"]["fp32_parity"]["tolerance"]
    except (KeyError, TypeError):
        raise CheckError(f"{card_path}: lacks checks.fp32_parity.tolerance") from None
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < float("inf"):
        raise CheckError(f"{card_path}: checks.fp32_parity.tolerance must be a finite number >= 0, "
                         f"got {tolerance!r}")


def check_format(folder: str, name: str, entry: dict, data: dict) -> dict:
    """Run one format on the sample inputs; returns its comparison with PyTorch's logits."""
    import onnxruntime as ort

    path = os.path.join(folder, entry["file"])
    if not os.path.isfile(path):
        raise CheckError(f"{name}: {path} is missing")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise CheckError(f"{name}: onnxruntime cannot load {path}: {exc}") from None
    try:
        logits = session.run(None, {session.get_inputs()[0].name: data["input"].astype(np.float32)})[0]
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise CheckError(f"{name}: {path} does not run on the sample inputs of shape {data['input'].shape}: "
                         f"{str(exc).splitlines()[0][:200]}") from None
    if logits.shape != data["logits"].shape:
        raise CheckError(f"{name}: outputs have shape {logits.shape}, expected {data['logits'].shape}")
    if not np.issubdtype(logits.dtype, np.number) or not np.isfinite(logits).all():
        raise CheckError(f"{name}: outputs are not all finite")
    return {"max_abs_diff": float(np.abs(logits.astype(np.float64) - data["logits"]).max()),
            "top1_agreement": float((logits.argmax(1) == data["logits"].argmax(1)).mean()),
            "correct": int((logits.argmax(1) == data["labels"]).sum())}


def check_folder(folder: str) -> dict:
    """Check every format of the export in ``folder``; returns ``{format: result}``.

    Raises:
        CheckError: the folder is not an export, a model is missing or does not run, or the
            fp32 outputs differ from PyTorch's by more than the card's tolerance.
    """
    card, data = _read(folder)
    tolerance = card["checks"]["fp32_parity"]["tolerance"]
    results = {}
    for name in FORMATS:
        if name in card.get("formats", {}):
            results[name] = check_format(folder, name, card["formats"][name], data)
    if "fp32" not in results:
        raise CheckError(f"{folder}: card.json lists no fp32 model")
    if results["fp32"]["max_abs_diff"] > tolerance:
        raise CheckError(f"fp32 outputs differ from PyTorch's by {results['fp32']['max_abs_diff']:.3g}, "
                         f"more than the tolerance {tolerance:g}")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check an export folder with onnxruntime alone.")
    parser.add_argument("folder", help="a folder written by `nas export`")
    args = parser.parse_args(argv)
    try:
        results = check_folder(args.folder)
    except CheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, r in results.items():
        print(f"{name:5s} ok: max abs diff from PyTorch {r['max_abs_diff']:.3g}, "
              f"top-1 agreement {r['top1_agreement']:.0%}, {r['correct']} of the sample correct")
    print(f"all {len(results)} formats load and run with onnxruntime alone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
