"""``nas latency profile|bundle|import|tables|predict|validate|compose``: latency tables from
the command line (thin: parsing and printing over nas.latency)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from nas.cli import UserError, describe_os_error
from nas.cli.arch import positive_int
from nas.cli.export import positive_float
from nas.cli.latency_common import (
    classes_from_args,
    latency_group,
    protocol_args,
    protocol_from_args,
    space_args,
    user_errors,
)
from nas.cli.latency_validate import register_validate
from nas.latency.errors import MissingOpsError
from nas.latency.importers import FORMATS as IMPORT_FORMATS
from nas.latency.table import MISSING_POLICIES, EstimatedLatencyWarning


def register(subparsers) -> None:
    group = latency_group(subparsers)
    p = group.add_parser("profile", help="measure every op of a space (or of given archs) into a table")
    space_args(p, required=False)
    p.add_argument("--arch", action="append", default=[], help="profile this arch's ops (repeatable)")
    p.add_argument("--runtime", choices=("onnxruntime", "torch"), default="onnxruntime")
    p.add_argument("-o", "--output", required=True, help="table CSV (resumed if it exists)")
    p.add_argument("--limit", type=positive_int, help="measure at most this many ops now (resume later)")
    p.add_argument("--max-minutes", type=positive_float, help="stop after about this long (resume later)")
    p.add_argument("--chunk", type=positive_int, default=32, help="ops measured together between saves")
    protocol_args(p)
    p.set_defaults(handler=user_errors(cmd_profile))

    p = group.add_parser("bundle", help="write a space's ops as ONNX models + manifest (zip) for runner.py")
    space_args(p, required=False)
    p.add_argument("--arch", action="append", default=[], help="bundle this arch's ops (repeatable)")
    p.add_argument("-o", "--output", required=True, help="zip to write")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=user_errors(cmd_bundle))

    p = group.add_parser("import", help="turn a runner CSV or a public ARM table into a latency table")
    p.add_argument("file", help="runner CSV, ProxylessNAS mobile_trim.yaml or OFA *_lookup_table.yaml")
    p.add_argument("--format", choices=IMPORT_FORMATS, default="runner")
    p.add_argument("-o", "--output", required=True, help="table CSV to write (its .json beside it)")
    p.set_defaults(handler=user_errors(cmd_import))

    p = group.add_parser("tables", help="list the shipped latency tables (usable by name as --table NAME)")
    p.add_argument("--json", action="store_true", help="JSON: one object per table")
    p.set_defaults(handler=user_errors(cmd_tables))

    p = group.add_parser("predict", help="predict an architecture's latency from a table")
    p.add_argument("arch", help="reference name, spec JSON file or spec string")
    p.add_argument("--table", required=True, help="a shipped table's name (nas latency tables) or a table path")
    p.add_argument("--missing", choices=MISSING_POLICIES, default=None,
                   help="what to do with ops the table lacks (default: the table's own: 'estimate' for tables "
                        "measured on another device, priced from their own entries; else 'error')")
    p.add_argument("--json", action="store_true", help="JSON with the per-op breakdown")
    p.set_defaults(handler=user_errors(cmd_predict))

    register_validate(group)


def _collect_ops(args) -> tuple[set, list[str]]:
    """The ops to profile/bundle: a space's reachable ops and/or given archs' ops."""
    from nas.archs import load_arch
    from nas.ops import resolve
    from nas.space import get_space

    if not args.space and not args.arch:
        raise UserError("give --space S (every op the space can reach) or --arch ARCH (repeatable)")
    ops, spaces = set(), []
    if args.space:
        ops |= get_space(args.space, args.input, classes_from_args(args)).reachable_ops()
        spaces.append(args.space)
    for text in args.arch:
        ops |= set(resolve(load_arch(text, args.input, args.classes)))
    return ops, spaces


def cmd_profile(args) -> int:
    from nas.latency.profile import profile, table_provenance

    ops, spaces = _collect_ops(args)
    protocol = protocol_from_args(args)
    provenance = table_provenance(protocol, args.runtime, args.input, classes_from_args(args), spaces, args.device)
    max_seconds = args.max_minutes * 60 if args.max_minutes else None
    table, measured, left = profile(ops, args.output, provenance, protocol, args.runtime, args.chunk,
                                    args.limit, max_seconds, progress=not args.no_progress)
    print(f"measured {measured} ops; {args.output} holds {len(table)} entries"
          + (f"; {left} still missing: run the same command again to resume" if left else "; complete"))
    return 0


def cmd_bundle(args) -> int:
    from nas.latency.bundle import write_bundle
    from nas.latency.profile import git_revision

    ops, spaces = _collect_ops(args)
    provenance = {"input": "x".join(map(str, args.input)), "classes": classes_from_args(args), "spaces": spaces,
                  "archs": args.arch, "git_revision": git_revision()}
    try:
        n = write_bundle(ops, args.output, provenance, progress=not args.no_progress)
    except OSError as exc:  # a full disk or an unwritable folder: name the file the user asked for
        partial = Path(args.output).with_name(Path(args.output).name + ".tmp")  # write_bundle's temporary zip
        if partial.is_file():
            partial.unlink()  # never leave a half-written zip behind; an earlier bundle stays as it was
        raise UserError(f"could not write bundle {args.output}: {describe_os_error(exc)}") from None
    print(f"wrote {n} ops to {args.output}; on the device: python runner.py {Path(args.output).name} -o device.csv")
    return 0


def rederive_command(args) -> str:
    """The command that re-derives an import: the source under $NAS_ARM_DATA when it lies there
    (so the command works on any checkout), else as given."""
    import os
    import shlex

    source = Path(args.file)
    data = os.environ.get("NAS_ARM_DATA")
    if data:
        try:
            source = "$NAS_ARM_DATA/" + source.resolve().relative_to(Path(data).resolve()).as_posix()
        except ValueError:
            pass
    source = f'"{source}"' if str(source).startswith("$") else shlex.quote(str(source))
    return f"nas latency import {source} --format {args.format} -o {shlex.quote(str(args.output))}"


def cmd_import(args) -> int:
    from nas.latency.importers import import_table

    table = import_table(args.file, args.format, command=rederive_command(args))
    table.save(args.output)
    print(f"imported {len(table)} entries ({args.format}) -> {args.output}")
    return 0


def cmd_tables(args) -> int:
    from nas.latency.registry import list_tables, tables_dir

    rows = list_tables()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no latency tables in {tables_dir()}")
        return 0
    columns = ("name", "device", "runtime", "threads", "space", "input", "entries", "source")
    text = [[("-" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in text)) for i, c in enumerate(columns)]
    for line in [list(columns), *text]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())
    print(f"({len(rows)} tables in {tables_dir()}; use a name wherever a table path goes: --table NAME, "
          f"latency: NAME)")
    return 0


def _whole_network(model, total: float, reference: str | None) -> dict | None:
    """The table sum as a whole-network estimate, for devices with published figures
    (nas.latency.published; a reference network is left out of the fit that judges it)."""
    if not hasattr(model, "op_ms"):
        return None
    from nas.latency.published import whole_network

    return whole_network(model, total, leave_out=reference)


def cmd_predict(args) -> int:
    from nas.archs import load_arch_for_table
    from nas.latency import load_latency_model
    from nas.ops import resolve
    from nas.space import list_references

    model = load_latency_model(args.table, missing=args.missing)
    provenance = getattr(model, "provenance", {})
    reference = args.arch in list_references()
    spec = load_arch_for_table(args.arch, provenance)
    ops = resolve(spec)
    model.check_input(spec.input)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EstimatedLatencyWarning)  # said below, once
            total = model.predict(ops)
            rows = model.breakdown(ops)
    except MissingOpsError as exc:
        if getattr(model, "missing_policy", "error") != "error":  # the estimator's own reason
            raise UserError(str(exc)) from None
        raise UserError(str(model.missing_error(exc.keys, args.arch))) from None
    estimated = [r["key"] for r in rows if r.get("estimated")] if isinstance(rows, list) else []
    policy = getattr(model, "missing_policy", args.missing)
    where = {k: provenance.get(k) for k in ("device", "runtime", "threads", "input")}
    whole = _whole_network(model, total, args.arch if reference else None)
    if args.json:
        print(json.dumps({"arch_id": spec.arch_id, "latency_ms": total, "estimated_ops": len(estimated),
                          "table": args.table, "ops": rows, "estimated_keys": estimated, "missing_policy": policy,
                          **where, "whole_network": whole,
                          "overhead_ms": getattr(getattr(model, "composition", None), "overhead_ms", None)},
                         indent=2))
        return 0
    device = ", ".join(f"{v}" if k != "threads" else f"{v} thread(s)" for k, v in where.items() if v is not None)
    print(f"{total:.4f} ms  ({spec.arch_id}, table {args.table}: {device})")
    if whole:
        print(f"whole-network estimate: {whole['latency_ms']:.4f} ms (the table sum above x {whole['scale']:.3f}, "
              f"fitted to the published figures of {', '.join(whole['fitted_on'])} on this device)")
    if estimated:
        print(f"note: {len(estimated)} of {len(ops)} ops were estimated by the {policy!r} policy, not measured:")
        by_key = {r["key"]: r for r in rows}
        for key in estimated:
            print(f"  ~ {by_key[key]['median_ms']:.4f} ms  {key}")
    return 0
