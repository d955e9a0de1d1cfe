"""Verify and measure exported ONNX files against the PyTorch network they came from.

Three checks per format: its outputs against PyTorch's on the same batch (max absolute
difference of the logits, and top-1 agreement), its accuracy on a whole split, and its
latency on this machine under the latency tables' protocol (:mod:`nas.latency.runner`: one
ONNX Runtime session per model, 1 thread, batch 1, warm-up, interleaved rounds, median).
Latency is in milliseconds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.data import Dataset, Split
from nas.latency import runner


def _eval_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime session with the protocol's settings (``threads`` None: all usable cores,
    for accuracy runs; latency is timed with 1 thread)."""
    return runner.make_session(str(path), threads or _eval_threads())


def run_onnx(sess, inputs: np.ndarray, batch: int = 500) -> np.ndarray:
    """Outputs of ``sess`` on (N, C, H, W) float32 ``inputs``, in batches (the batch dimension
    of an exported model is dynamic)."""
    name = sess.get_inputs()[0].name
    parts = [sess.run(None, {name: np.ascontiguousarray(inputs[i:i + batch])})[0]
             for i in range(0, len(inputs), batch)]
    return np.concatenate(parts).astype(np.float32, copy=False)


def torch_logits(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    """PyTorch's float32 logits for ``inputs`` (eval mode; the model's mode is restored)."""
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        out = model(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))).float().numpy()
    model.train(was_training)
    return out


def normalized(dataset: Dataset, split: Split, count: int | None = None) -> np.ndarray:
    """The first ``count`` images of ``split`` as model inputs (float32, normalised)."""
    images = split.images if count is None else split.images[:count]
    return dataset.normalize(images).numpy()


def compare(outputs: np.ndarray, reference: np.ndarray) -> dict:
    """max_abs_diff of the logits and top1_agreement (share of equal argmaxes)."""
    if outputs.shape != reference.shape:
        raise ValueError(f"outputs of shape {outputs.shape} cannot be compared with {reference.shape}")
    return {"max_abs_diff": float(np.abs(outputs.astype(np.float64) - reference).max()),
            "top1_agreement": float((outputs.argmax(1) == reference.argmax(1)).mean())}


def onnx_accuracy(sess, dataset: Dataset, split: Split, batch: int = 500) -> float:
    """Top-1 accuracy of an ONNX session on ``split`` (normalised batch by batch)."""
    correct = 0
    name = sess.get_inputs()[0].name
    for start in range(0, len(split), batch):
        x = dataset.normalize(split.images[start:start + batch]).numpy()
        logits = sess.run(None, {name: x})[0]
        correct += int((logits.argmax(1) == split.labels[start:start + batch].numpy()).sum())
    return correct / max(1, len(split))


def torch_accuracy(model: nn.Module, dataset: Dataset, split: Split, batch: int = 500) -> float:
    correct = 0
    for start in range(0, len(split), batch):
        logits = torch_logits(model, normalized(dataset, Split(split.images[start:start + batch],
                                                               split.labels[start:start + batch])))
        correct += int((logits.argmax(1) == split.labels[start:start + batch].numpy()).sum())
    return correct / max(1, len(split))


def measure_latency(paths: Mapping[str, str | Path], protocol: runner.Protocol | None = None) -> dict:
    """Latency summaries (ms: median, p10, p90, ...) of each ONNX file, measured side by side:
    every model is timed in the same interleaved rounds, so a slow spell of this shared machine
    hits all formats alike and their ratios stay honest. Also returns the measured cost of one
    session call under ``"__overhead__"``."""
    protocol = protocol or runner.Protocol()
    with runner.pinned(protocol.cpu) as pin:
        calls = {name: runner.bound_call(runner.make_session(str(path), protocol.threads,
                                                             optimization=protocol.optimization))
                 for name, path in paths.items()}
        results = runner.measure(calls, protocol)
        results[runner.OVERHEAD_KEY] = runner.measure_overhead(protocol)
    for summary in results.values():
        summary["cpu"] = pin.cpu
    return results


def optimized_op_counts(path: str | Path, optimization: str) -> dict[str, int]:
    """Op types of the graph ONNX Runtime actually runs for ``path`` after its optimisations
    up to ``optimization`` (a level of :data:`nas.latency.runner.OPTIMIZATIONS`): shows, for
    example, how many int8 convolutions were fused into integer kernels (QLinearConv) and how
    many stayed in float between Q/DQ pairs."""
    import tempfile
    from collections import Counter

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="nas-opt-") as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, runner.OPTIMIZATIONS[optimization])
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
    return dict(Counter(node.op_type for node in graph.node).most_common())


def unfolded_batchnorms(proto) -> list[str]:
    """Names of the BatchNormalization nodes of an ONNX graph that a Conv feeds directly:
    folding leaves none. (A batch norm after a sum, like NAS-Bench-201's final BN+ReLU, has no
    convolution to fold into and rightly stays.)"""
    producers = {out: node.op_type for node in proto.graph.node for out in node.output}
    return [node.name for node in proto.graph.node
            if node.op_type == "BatchNormalization" and producers.get(node.input[0]) == "Conv"]
