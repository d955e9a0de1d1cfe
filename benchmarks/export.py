"""Benchmark: fp32 vs int8 vs fp16 ONNX on this CPU, for three networks trained briefly on
Fashion-MNIST: latency ratios (measured side by side, medians), test accuracy and size.

Each network is trained on the whole training set (weights are cached in --work, so a rerun
only measures), then exported with ``nas.export.pipeline.export_model`` (BN-folded fp32, int8 S8S8 QDQ,
fp16; the export's own parity checks and card). On top of the export's formats this script
also quantizes with U8S8 activations and times all four files in the same interleaved rounds,
under the latency tables' protocol (ONNX Runtime, 1 thread, batch 1, pinned to one core).

Run it on a quiet machine, serialised with other heavy work::

    python benchmarks/export.py --out export.json

Prints JSON: per network, params, MACs, and per format the median latency (ms), the ratio
fp32 median / format median (>1: faster than fp32), test accuracy, size, and the max abs
difference of the logits from PyTorch's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from nas.data import load_dataset
from nas.export.pipeline import ExportOptions, calibration_inputs, export_model
from nas.export.quantize import Int8Options, quantize_int8
from nas.export.retrain import load_weights, retrain
from nas.export.verify import compare, measure_latency, normalized, onnx_accuracy, run_onnx, session, torch_logits
from nas.latency import runner
from nas.space import get_reference
from nas.train import Budget, build_network, has_normalisation

NETWORKS = ("mobilenet_v1_0.25", "squeezenet1_1", "mobilenet_v2_0.35")


def optimizer_for(spec) -> str:
    """SGD for networks with batch norm; AdamW for those without (SqueezeNet 1.1 diverges or
    stays at chance with SGD here: 1 epoch on 10% gave 12% validation accuracy at lr 0.01,
    70% with AdamW)."""
    return "sgd-nesterov" if has_normalisation(build_network(spec)) else "adamw"


def trained(name: str, dataset, epochs: int, work: Path):
    """The reference network ``name``, trained for ``epochs`` on the whole training set (cached)."""
    spec = get_reference(name, dataset.input_shape, dataset.classes)
    optimizer = optimizer_for(spec)
    path = work / f"{name}-e{epochs}-{optimizer}.pt"
    if path.is_file():
        return spec, load_weights(spec, path), None, optimizer
    print(f"training {name} for {epochs} epochs ({optimizer})", file=sys.stderr)
    model, summary = retrain(spec, dataset, Budget(epochs=epochs, optimizer=optimizer), progress=True)
    torch.save(model.state_dict(), path)
    return spec, model, summary["train_time_s"], optimizer


def bench_network(name: str, dataset, epochs: int, work: Path, protocol: runner.Protocol) -> dict:
    spec, model, train_s, optimizer = trained(name, dataset, epochs, work)
    folder = work / name
    card = export_model(model, spec, dataset, folder, options=ExportOptions(protocol=protocol, overwrite=True),
                        weights={"description": f"trained {epochs} epochs for this benchmark"},
                        log=lambda line: print(f"{name}: {line}", file=sys.stderr))
    u8 = folder / "model.int8-u8s8.onnx"
    quantize_int8(folder / "model.onnx", u8, calibration_inputs(dataset, 512), Int8Options(scheme="u8s8"))
    inputs = normalized(dataset, dataset.test, 256)
    u8_session = session(u8)
    extra = {"file": u8.name, "size_bytes": u8.stat().st_size,
             "test_accuracy": onnx_accuracy(u8_session, dataset, dataset.test),
             **compare(run_onnx(u8_session, inputs), torch_logits(model, inputs))}
    # all four files timed in the same interleaved rounds: the ratios are side by side
    paths = {"fp32": folder / "model.onnx", "int8_s8s8": folder / "model.int8.onnx", "int8_u8s8": u8,
             "fp16": folder / "model.fp16.onnx"}
    timings = measure_latency(paths, protocol)
    entries = {"fp32": card["formats"]["fp32"], "int8_s8s8": card["formats"]["int8"], "int8_u8s8": extra,
               "fp16": card["formats"]["fp16"]}
    base, base_size = timings["fp32"]["median"], entries["fp32"]["size_bytes"]
    formats = {}
    for key, entry in entries.items():
        t = timings[key]
        formats[key] = {"median_ms": round(t["median"], 5), "p10_ms": round(t["p10"], 5),
                        "p90_ms": round(t["p90"], 5),
                        "speedup_vs_fp32": round(base / t["median"], 3),
                        "test_accuracy": entry["test_accuracy"], "size_bytes": entry["size_bytes"],
                        "size_vs_fp32": round(entry["size_bytes"] / base_size, 3),
                        "max_abs_diff_vs_pytorch": entry["max_abs_diff"],
                        "top1_agreement_vs_pytorch": entry["top1_agreement"]}
    return {"network": name, "params": card["arch"]["params"], "macs": card["arch"]["macs"],
            "train_epochs": epochs, "optimizer": optimizer, "train_time_s": train_s,
            "pytorch_test_accuracy": card["formats"]["pytorch"]["test_accuracy"],
            "fp32_parity_passed": card["checks"]["fp32_parity"]["passed"],
            "int8_s8s8_accuracy_drop_points": round(card["checks"]["int8_accuracy_drop_points"], 3),
            "int8_u8s8_accuracy_drop_points": round(100 * (card["formats"]["fp32"]["test_accuracy"]
                                                            - extra["test_accuracy"]), 3),
            "int8_s8s8_runtime_ops": card["formats"]["int8"]["runtime_ops"],
            "session_overhead_ms": round(timings[runner.OVERHEAD_KEY]["median"], 5), "formats": formats}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default=",".join(NETWORKS), help="reference networks, comma-separated")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per network (cached in --work)")
    parser.add_argument("--work", default="runs/bench-export", help="folder for weights and exports")
    parser.add_argument("--repeats", type=int, default=300, help="timed calls per format")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--train-only", action="store_true", help="train (and cache) the networks, measure nothing")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset("fashion-mnist")
    names = [n.strip() for n in args.networks.split(",") if n.strip()]
    if args.train_only:
        for name in names:
            trained(name, dataset, args.epochs, work)
        return 0
    protocol = runner.Protocol(warmup=20, repeats=args.repeats, rounds=args.rounds)
    start = time.time()
    results = [bench_network(name, dataset, args.epochs, work, protocol) for name in names]
    report = {"benchmark": "export", "dataset": dataset.name, "test_images": len(dataset.test),
              "cpu_model": runner.cpu_model(), "runtime": "onnxruntime " + __import__("onnxruntime").__version__,
              "threads": 1, "batch": 1, "protocol": protocol.as_dict(),
              "ratio": "speedup_vs_fp32 = fp32 median / format median, all formats timed in the same rounds",
              "networks": results, "wall_s": round(time.time() - start, 1)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
