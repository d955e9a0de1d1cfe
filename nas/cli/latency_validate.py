"""``nas latency validate`` and ``nas latency compose``: whole networks measured end to end,
to prove a table (validate) or to fit its systematic terms (compose)."""

from __future__ import annotations

import json
from pathlib import Path

from nas.cli import UserError
from nas.cli.arch import positive_int
from nas.cli.latency_common import classes_from_args, protocol_args, protocol_from_args, space_args, user_errors


def register_validate(group) -> None:
    p = group.add_parser("validate", help="measure N random networks end to end against the table's predictions")
    space_args(p)
    p.add_argument("--table", required=True)
    p.add_argument("--n", type=positive_int, default=100, help="random networks (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runtime", choices=("onnxruntime", "torch"), default=None,
                   help="default: the table's runtime")
    p.add_argument("--json", action="store_true", help="print the full record as JSON")
    p.add_argument("--plot", help="write a predicted-vs-measured scatter plot (PNG)")
    p.add_argument("--save", help="write the full record (JSON) here")
    protocol_args(p)
    p.set_defaults(handler=user_errors(cmd_validate))

    p = group.add_parser("compose", help="fit a table's systematic terms (scale, offset) on measured networks")
    space_args(p)
    p.add_argument("--table", required=True, help="table to update (its sidecar gets the fitted terms)")
    p.add_argument("--n", type=positive_int, default=30, help="random networks to measure (default 30)")
    p.add_argument("--seed", type=int, default=None, help="default: 100000, disjoint from validate's seeds")
    protocol_args(p)
    p.set_defaults(handler=user_errors(cmd_compose))


def _setup(args):
    from nas.latency.registry import resolve_table
    from nas.latency.table import LatencyTable
    from nas.space import get_space

    args.table = str(resolve_table(args.table))  # a shipped table's name or a path; compose saves here
    table = LatencyTable.from_file(args.table)
    if table.provenance.get("source") == "import":
        raise UserError(f"{args.table} was measured on {table.provenance.get('device', 'another device')}: "
                        f"networks measured on this machine cannot validate or calibrate it")
    table.check_input(args.input)
    space = get_space(args.space, args.input, classes_from_args(args))
    runtime = args.runtime if getattr(args, "runtime", None) else (
        "torch" if table.provenance.get("runtime") == "torch" else "onnxruntime")
    if table.provenance.get("threads", 1) != args.threads:
        raise UserError(f"the table was measured with {table.provenance.get('threads')} thread(s), not "
                        f"{args.threads}: validate with --threads {table.provenance.get('threads')}")
    missing = sorted({k for op in space.reachable_ops() for k in [op.key] if k not in table.entries})
    if missing:
        raise UserError(str(table.missing_error(missing)))
    optimization = table.provenance.get("graph_optimization", "all")  # tables before the field: "all"
    if args.optimization and args.optimization != optimization:
        raise UserError(f"the table was measured with graph optimisation {optimization!r}, not "
                        f"{args.optimization!r}: networks must be measured the same way")
    return table, space, protocol_from_args(args, optimization), runtime


def cmd_validate(args) -> int:
    from nas.latency.validate import plot, validate

    table, space, protocol, runtime = _setup(args)
    report = validate(table, space, args.n, args.seed, protocol, runtime, progress=not args.no_progress)
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot(report, args.plot)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{report['space']} {report['input']}: {args.n} random networks, measured end to end ({runtime})")
    print(f"{'':<16}{'within 5%':>10}{'within 10%':>11}{'MAPE %':>8}{'tau':>7}{'spearman':>9}")
    for name, key in (("table", "table_prediction"), ("FLOPs baseline", "flops_baseline")):
        m = report[key]
        print(f"{name:<16}{m['within_5pct']:>10.0%}{m['within_10pct']:>11.0%}{m['mape_pct']:>8.1f}"
              f"{m['kendall_tau']:>7.3f}{m['spearman']:>9.3f}")
    print(f"baseline: {report['flops_baseline']['fitted']}")
    return 0


def cmd_compose(args) -> int:
    from nas.latency.validate import COMPOSE_SEED, fit_composition, measure_networks, sample_networks

    table, space, protocol, runtime = _setup(args)
    seed = COMPOSE_SEED if args.seed is None else args.seed
    nets = sample_networks(space, args.n, seed)
    ops_list = [ops for _, _, ops in nets]
    measured = [s["median"] for s in measure_networks(ops_list, protocol, runtime, progress=not args.no_progress)]
    record = {"space": space.name, "seed": seed, "seeds": [s for s, _, _ in nets], "runtime": runtime,
              "protocol": protocol.as_dict()}
    table.composition = fit_composition(table, ops_list, measured, record)
    table.save(args.table)
    fit = table.composition.fitted
    c = table.composition
    print(f"fitted on {args.n} networks ({fit['terms']}): scale {c.scale:.4f}, offset {c.offset_ms:.4f} ms, "
          f"{c.per_mb_ms:.4f} ms per weight MB (overhead {c.overhead_ms:.4f} ms); within 10%: "
          f"{fit['before']['within_10pct']:.0%} -> {fit['after']['within_10pct']:.0%} on these networks")
    return 0
