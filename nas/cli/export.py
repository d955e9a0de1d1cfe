"""``nas export``: retrain a network chosen from a search run and write it as ONNX fp32, int8
and fp16, each verified against PyTorch and measured."""

from __future__ import annotations

import argparse
import math

from nas.cli import UserError
from nas.cli.arch import positive_int


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def register(subparsers) -> None:
    from nas.export.pipeline import ExportOptions
    from nas.export.quantize import CALIBRATION_METHODS, INT8_SCHEMES
    from nas.export.retrain import DEFAULT_RETRAIN_EPOCHS

    defaults = ExportOptions()  # the options' defaults are the library's

    p = subparsers.add_parser(
        "export", help="retrain a chosen architecture; write ONNX fp32/int8/fp16, verified and measured",
        description="Choose an architecture of a search run, retrain it on the whole training set (or load "
                    "--weights), and write arch.json, model.pt, model.onnx (batch norm folded), model.int8.onnx, "
                    "model.fp16.onnx, card.json and README.md into OUT_DIR: test accuracy, latency measured here "
                    "(ONNX Runtime, 1 thread), the device table's prediction, size and parity of each format.")
    p.add_argument("run", metavar="RUN_FOLDER", help="a folder written by `nas search`")
    choice = p.add_mutually_exclusive_group(required=True)
    choice.add_argument("--trial", type=int, metavar="N", help="export trial N")
    choice.add_argument("--pareto-index", type=int, metavar="K",
                        help="export the K-th network of the Pareto front (0 = fastest; as `nas pareto` lists them)")
    choice.add_argument("--max-latency", type=positive_float, metavar="MS",
                        help="export the most accurate Pareto network predicted at most MS milliseconds")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--retrain-epochs", type=positive_int, metavar="E",
                         help=f"epochs of retraining on train + validation (default {DEFAULT_RETRAIN_EPOCHS}; "
                              "the other training settings are the search's)")
    weights.add_argument("--weights", metavar="model.pt", help="export this state_dict instead of retraining")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder to write the export into")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in OUT_DIR")
    q = p.add_argument_group("int8 quantization")
    q.add_argument("--int8-scheme", choices=INT8_SCHEMES, default=defaults.int8.scheme,
                   help=f"activation and weight types (default {defaults.int8.scheme})")
    q.add_argument("--calibration", choices=CALIBRATION_METHODS, default=defaults.int8.calibration,
                   help=f"activation range estimator (default {defaults.int8.calibration})")
    q.add_argument("--calibration-images", type=positive_int, default=defaults.calibration_images,
                   help=f"training images to calibrate on (default {defaults.calibration_images})")
    q.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor instead of per channel")
    m = p.add_argument_group("measurement")
    m.add_argument("--repeats", type=positive_int, default=defaults.protocol.repeats,
                   help=f"timed calls per format (default {defaults.protocol.repeats})")
    m.add_argument("--warmup", type=positive_int, default=defaults.protocol.warmup,
                   help=f"warm-up calls per format (default {defaults.protocol.warmup})")
    m.add_argument("--parity-images", type=positive_int, default=defaults.parity_images,
                   help=f"test images on which outputs are compared with PyTorch's (default {defaults.parity_images})")
    p.set_defaults(handler=cmd_export)


def options_from_args(args):
    from nas.export.pipeline import ExportOptions
    from nas.export.quantize import Int8Options
    from nas.latency.runner import Protocol

    try:
        int8 = Int8Options(scheme=args.int8_scheme, calibration=args.calibration, per_channel=not args.per_tensor)
        protocol = Protocol(warmup=args.warmup, repeats=args.repeats)
        return ExportOptions(int8=int8, calibration_images=args.calibration_images,
                             parity_images=args.parity_images, protocol=protocol, overwrite=args.overwrite)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def cmd_export(args) -> int:
    from nas.export import ExportError, export_network

    options = options_from_args(args)
    try:
        card = export_network(args.run, args.output, trial=args.trial, pareto_index=args.pareto_index,
                              max_latency_ms=args.max_latency, retrain_epochs=args.retrain_epochs,
                              weights=args.weights, options=options, log=lambda line: print(line, flush=True))
    except ExportError as exc:
        raise UserError(str(exc)) from None
    print_summary(card, args.output)
    return 0 if card["checks"]["fp32_parity"]["passed"] else 1


def print_summary(card: dict, folder: str) -> None:
    print(f"{'format':7s} {'test acc':>9s} {'latency ms':>11s} {'vs fp32':>8s} {'size MB':>8s} {'max |diff|':>10s}")
    for name, entry in card["formats"].items():
        lat, diff, ratio = entry.get("latency_ms"), entry.get("max_abs_diff"), entry.get("speedup_vs_fp32")
        latency = "" if lat is None else f"{lat['median']:.4f}"
        speed = "" if ratio is None else f"{ratio:.2f}x"
        difference = "" if diff is None else f"{diff:.2e}"
        print(f"{name:7s} {entry['test_accuracy']:>9.2%} {latency:>11s} {speed:>8s} "
              f"{entry['size_bytes'] / 1e6:>8.3f} {difference:>10s}")
    predicted = card["predicted"].get("latency_ms")
    if predicted is not None:
        print(f"predicted (fp32, {card['predicted'].get('source')}): {predicted:.4f} ms")
    for note in card["notes"]:
        print(f"note: {note}")
    from nas.export.pipeline import OUTPUT_FILES

    print(f"wrote {folder}/: {', '.join(OUTPUT_FILES)}")
