"""Reduced-precision copies of an exported fp32 ONNX network: int8 (static, QDQ) and fp16.

Both take the fp32 ``model.onnx`` written by :mod:`nas.export.to_onnx` (batch norm folded, input
``input`` of shape (N, C, H, W) float32) and keep float32 inputs and outputs, so every format
is called the same way and timed by the same runner.

* int8: ONNX Runtime static quantization in QDQ format (QuantizeLinear/DequantizeLinear pairs
  around each quantizable op, which the CPU runtime fuses into integer kernels). Activation
  ranges are calibrated by running the fp32 model on training images (never test images);
  weights are quantized per output channel by default, because a per-tensor scale wastes most
  of the int8 range on depthwise convolutions, whose channels differ by orders of magnitude.
* fp16: weights and activations in float16, with float32 graph inputs and outputs (casts are
  inserted at the boundary).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
INT8_SCHEMES = ("s8s8", "u8s8")  # activations, weights


@dataclass(frozen=True)
class Int8Options:
    """How :func:`quantize_int8` quantizes.

    ``scheme`` names the activation and weight types: ``s8s8`` (signed int8 for both, the
    default) or ``u8s8`` (unsigned activations; ONNX Runtime's advice for x86 CPUs).
    ``calibration`` is ONNX Runtime's range estimator; ``per_channel`` quantizes weights per
    output channel; ``calibration_batch`` is how many images one calibration call sees.
    """

    scheme: str = "s8s8"
    calibration: str = "minmax"
    per_channel: bool = True
    calibration_batch: int = 64

    def __post_init__(self) -> None:
        if self.scheme not in INT8_SCHEMES:
            raise ValueError(f"int8 scheme must be one of {list(INT8_SCHEMES)}, got {self.scheme!r}")
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"calibration must be one of {list(CALIBRATION_METHODS)}, got {self.calibration!r}")
        if not isinstance(self.calibration_batch, int) or self.calibration_batch < 1:
            raise ValueError(f"calibration_batch must be a positive integer, got {self.calibration_batch!r}")

    def to_dict(self) -> dict:
        return {"format": "QDQ", "scheme": self.scheme.upper(), "calibration": self.calibration,
                "per_channel": self.per_channel}


class _Batches:
    """ONNX Runtime's calibration reader protocol: ``get_next()`` returns one input feed or None."""

    def __init__(self, images: np.ndarray, input_name: str, batch: int):
        self._feeds = iter([{input_name: images[i:i + batch]} for i in range(0, len(images), batch)])

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self) -> None:  # pragma: no cover - only multi-pass calibrators call it
        raise RuntimeError("calibration data can be read once")


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantizer logs advice through the root logger at WARNING (e.g. to pre-process the
    model, which we do); keep it off the user's terminal, restoring the level afterwards."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration_images: np.ndarray,
                  options: Int8Options | None = None) -> Path:
    """Write the static int8 (QDQ) quantization of the ONNX model at ``fp32_path`` to ``out_path``.

    ``calibration_images`` are model inputs, (N, C, H, W) float32, already normalised, drawn
    from the training set. The model is first pre-processed as ONNX Runtime recommends (shape
    inference and graph clean-up, e.g. removing the Identity nodes the exporter emits for
    shared constants), then calibrated and quantized.

    Raises:
        ValueError: no calibration images, or images of the wrong shape or dtype.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    options = options or Int8Options()
    images = np.ascontiguousarray(calibration_images, dtype=np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"calibration images must be a non-empty (N, C, H, W) array, got shape {images.shape}")
    model = onnx.load(str(fp32_path))
    input_name = model.graph.input[0].name
    activations = QuantType.QInt8 if options.scheme == "s8s8" else QuantType.QUInt8
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[options.calibration]
    with tempfile.TemporaryDirectory(prefix="nas-quant-") as tmp, _quiet_quantizer():
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(str(fp32_path), prepared, skip_symbolic_shape=True)
        quantize_static(prepared, str(out_path), _Batches(images, input_name, options.calibration_batch),
                        quant_format=QuantFormat.QDQ, per_channel=options.per_channel,
                        activation_type=activations, weight_type=QuantType.QInt8, calibrate_method=method)
    onnx.checker.check_model(str(out_path))
    return Path(out_path)


def convert_fp16(fp32_path: str | Path, out_path: str | Path) -> Path:
    """Write a float16 copy of the ONNX model at ``fp32_path`` with float32 inputs and outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    _sort_topologically(model.graph)  # the converter appends its input casts after their users
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return Path(out_path)


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so that every node follows the producers of its inputs (in place;
    the relative order of independent nodes is kept)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = [copy.deepcopy(node) for node in graph.node]
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [all(name in available for name in n.input) for n in pending]
        if not any(ready):
            raise ValueError(f"graph {graph.name!r} has a cycle or an input nothing produces")
        for node, ok in zip(pending, ready):
            if ok:
                available.update(node.output)
                ordered.append(node)
        pending = [node for node, ok in zip(pending, ready) if not ok]
    del graph.node[:]
    graph.node.extend(ordered)
