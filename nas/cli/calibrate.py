"""``nas latency calibrate``: fit a calibrated latency model from whole networks measured on
the target device (and, optionally, a per-op table to start from)."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

from nas.archs import load_arch
from nas.cli import UserError
from nas.cli.latency_common import latency_group
from nas.ops import resolve
from nas.space import get_space
from nas.spec import SpecError, parse_shape

MAX_NETWORKS = 1_000_000  # rows of a measured-networks CSV


def register(subparsers) -> None:
    """Add ``calibrate`` to the ``latency`` command group."""
    p = latency_group(subparsers).add_parser(
        "calibrate", help="fit a latency model to whole networks measured on the device",
        description="Fit a calibrated latency model: a per-op table (or none) plus a correction learned "
                    "from K whole networks measured on the target device. MEASURED is a CSV with one "
                    "row per network: an architecture (spec string, NAS-Bench-201 arch string or spec "
                    "file; for FBNet also HW-NAS-Bench's index list) and its measured latency in ms. "
                    "With --references, other devices' measurements of the space are turned into per-op "
                    "tables that the model combines, so 10-20 measured networks suffice (few-shot transfer).")
    p.add_argument("measured", help="CSV of measured networks")
    p.add_argument("-o", "--output", required=True, help="where to write the model (JSON)")
    p.add_argument("--space", help="check that every network belongs to this search space")
    p.add_argument("--input", help="input shape HxWxC of the networks (default: as the arch says)")
    p.add_argument("--classes", type=int, help="class count (default: as the arch says)")
    p.add_argument("--table", help="per-op latency table to start from (default: none; fitted from the networks)")
    p.add_argument("--arch-column", default="arch", help="CSV column with the architecture (default: arch)")
    p.add_argument("--ms-column", default="ms", help="CSV column with the measured latency in ms (default: ms)")
    p.add_argument("--k", type=int, help="use K random rows of the CSV (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for --k and the cross-validation folds")
    p.add_argument("--device", help="device name recorded in the model's provenance")
    p.add_argument("--references", metavar="DATA",
                   help="few-shot transfer: reference devices' measurements of the space (the shared ARM data "
                        "folder, or a CSV with one network per row and <device>_ms columns); their per-op "
                        "tables join the model, so a handful of measured networks suffice (needs --space)")
    p.add_argument("--exclude", default="", help="reference devices to leave out, comma-separated")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(handler=run)


def _read_rows(path: Path, arch_col: str, ms_col: str) -> list[tuple[str, float]]:
    if path.is_dir():
        raise UserError(f"measured-networks file {str(path)!r} is a folder; expected a CSV file")
    if not path.is_file():
        raise FileNotFoundError(f"measured-networks file {str(path)!r} does not exist")
    try:
        return _parse_rows(path, arch_col, ms_col)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not a text CSV file (not UTF-8: {exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise UserError(f"{path} is not a valid CSV file: {exc}") from None


def _parse_rows(path: Path, arch_col: str, ms_col: str) -> list[tuple[str, float]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (arch_col, ms_col) if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path} has no column(s) {missing}; it has {reader.fieldnames} "
                            f"(choose with --arch-column / --ms-column)")
        rows, lines = [], {}
        for n, row in enumerate(reader, start=2):
            arch, text = row[arch_col], row[ms_col]
            try:
                ms = float(text)
            except (TypeError, ValueError):
                raise UserError(f"{path} line {n}: {ms_col} must be a number of ms, got {text!r}") from None
            if not (math.isfinite(ms) and ms > 0):
                raise UserError(f"{path} line {n}: {ms_col} must be a finite latency > 0 ms, got {text!r}")
            if not arch:
                raise UserError(f"{path} line {n}: the {arch_col} column is empty")
            if arch in lines:  # two measurements of one network: which one is meant?
                raise UserError(f"{path} line {n}: network {arch[:80]!r} is listed more than once "
                                f"(duplicate of line {lines[arch]}); keep one measurement per network")
            lines[arch] = n
            rows.append((arch, ms))
            if len(rows) > MAX_NETWORKS:
                raise UserError(f"{path} holds more than {MAX_NETWORKS:,} networks; split it")
    if not rows:
        raise UserError(f"{path} holds no measured networks")
    return rows


def _arch_text(arch: str, space: str | None) -> str:
    """FBNet networks may be given as HW-NAS-Bench's bare index list (``[0, 8, ...]``)."""
    return f"fbnet:{arch}" if space == "fbnet" and arch.strip().startswith("[") else arch


def _networks(rows, args) -> list[tuple]:
    shape = parse_shape(args.input) if args.input else None
    default_classes = 100 if args.space == "fbnet" else 10
    space = get_space(args.space, shape or (32, 32, 3), args.classes or default_classes) if args.space else None
    nets = []
    for arch, _ in rows:
        spec = load_arch(_arch_text(arch, args.space), shape, args.classes)
        if space is not None and not space.contains(spec):
            raise UserError(f"network {arch[:80]!r} is not in space {args.space!r} at input "
                            f"{'x'.join(map(str, space.input_shape))} (check --space and --input)")
        nets.append(resolve(spec))
    return nets


def _references(args, provenance: dict):
    """Reference tables for ``--references`` (fitted on every network of the reference file)."""
    if not args.references:
        return None
    from nas.latency.fewshot import load_references, reference_file

    if not args.space:
        raise UserError("--references needs --space (the space the reference measurements are of)")
    exclude = [d.strip() for d in args.exclude.split(",") if d.strip()]
    path = reference_file(args.references, args.space)
    references = load_references(path, args.space, exclude)
    provenance["reference_file"] = path.name
    return references


def run(args) -> int:
    from nas.latency.calibrate import CalibrationError, calibrate

    rows = _read_rows(Path(args.measured), args.arch_column, args.ms_column)
    if args.k is not None:
        if not 1 <= args.k <= len(rows):
            raise UserError(f"--k {args.k} asks for more networks than {args.measured} holds ({len(rows)})"
                            if args.k > len(rows) else f"--k must be positive, got {args.k}")
        rows = random.Random(args.seed).sample(rows, args.k)
    nets = _networks(rows, args)
    table = None
    if args.table:
        from nas.latency import load_latency_model

        table = load_latency_model(args.table)
    shapes = {ops[0].input for ops in nets}
    provenance = {"device": args.device or "unknown", "measured_file": str(args.measured),
                  "base_table": args.table, "space": args.space,
                  "input": "x".join(map(str, next(iter(shapes)))) if len(shapes) == 1 else None}
    try:
        references = _references(args, provenance)
        model = calibrate(nets, [ms for _, ms in rows], table=table, seed=args.seed, provenance=provenance,
                          references=references)
    except (CalibrationError, SpecError) as exc:
        raise UserError(str(exc)) from None
    model.save(args.output)
    prov = model.provenance
    summary = {"output": args.output, "networks": prov["networks"], "selected": prov["selected"],
               "ridge": prov["ridge"], "cv_loss": prov["cv_trace"][-1]["cv_loss"], "device": prov["device"],
               "references": sorted(model.references)}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"calibrated on {summary['networks']} networks: groups {', '.join(prov['selected']['groups']) or 'base'}"
              f" (tags {', '.join(prov['selected']['tags']) or 'none'}), ridge {summary['ridge']}, "
              f"cross-validated mean relative error {summary['cv_loss']:.3f} -> {args.output}")
    return 0
