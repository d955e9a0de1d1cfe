"""``nas spaces``, ``nas arch show`` and ``nas arch sample``."""

from __future__ import annotations

import argparse
import json

from nas.archs import load_arch
from nas.ops import count_macs, count_params, op_macs, op_params, resolve
from nas.space import FASHION_MNIST, get_space, list_references, list_spaces, space_class
from nas.spec import parse_shape


def shape_arg(text: str) -> tuple[int, int, int]:
    """argparse type for HxWxC."""
    try:
        return parse_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def seed_arg(text: str) -> int:
    """argparse type for a random seed: an integer in [0, 2**32 - 1], as numpy and torch take."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed in [0, {2**32 - 1}], got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer seed in [0, {2**32 - 1}], got {text!r}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser("spaces", help="list the search spaces: names, descriptions, sizes")
    p.add_argument("--input", type=shape_arg, default=FASHION_MNIST, help="input shape HxWxC (default 28x28x1)")
    p.add_argument("--classes", type=positive_int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_spaces)

    arch_parser = subparsers.add_parser("arch", help="inspect architectures")
    arch = arch_parser.add_subparsers(dest="arch_command", metavar="ACTION")
    arch.required = True
    p = arch.add_parser("show", help="params, MACs and the op table of a reference, spec file or spec string")
    p.add_argument("arch", help="reference name (see `nas arch list`), spec JSON file, or spec string")
    p.add_argument("--input", type=shape_arg, default=None, help="input shape HxWxC for a reference (default 28x28x1)")
    p.add_argument("--classes", type=positive_int, default=None, help="class count for a reference (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON: arch_id, params, macs, ops, spec")
    p.set_defaults(handler=cmd_show)

    p = arch.add_parser("sample", help="print a random spec of a space as JSON")
    p.add_argument("space")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--input", type=shape_arg, default=FASHION_MNIST)
    p.add_argument("--classes", type=positive_int, default=10)
    p.add_argument("--json", action="store_true", help="accepted for symmetry; the output is always JSON")
    p.set_defaults(handler=cmd_sample)

    p = arch.add_parser("list", help="list the reference networks")
    p.set_defaults(handler=cmd_list)


def cmd_spaces(args) -> int:
    rows = []
    for name in list_spaces():
        space = get_space(name, args.input, args.classes)
        rows.append({"name": name, "description": space.description, "size": space.size(),
                     "parameters": len(space.parameters()), "references": list_references(space=name)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']:<14} {row['size']:>24,} architectures  {row['parameters']:>3} params")
        print(f"{'':<14} {row['description']}")
        if row["references"]:
            print(f"{'':<14} references: {', '.join(row['references'])}")
    return 0


def _describe_op(op) -> str:
    parts = []
    if op.type == "ir":
        parts.append(f"e{op.expand} mid{op.mid}")
    if op.type == "shuffle":
        parts.append(f"mid{op.mid}")
    if op.type == "fire":
        parts.append(f"sq{op.squeeze} e1x{op.expand1x1} e3x{op.expand3x3}")
    if op.type == "nb201":
        parts.append("+".join(op.ops))
    if op.type == "dropout":
        parts.append(f"p{op.p}")
    if op.se:
        parts.append("se")
    if op.residual:
        parts.append("residual")
    if op.act != "none":
        parts.append(op.act)
    return " ".join(parts)


def cmd_show(args) -> int:
    spec = load_arch(args.arch, args.input, args.classes)
    ops = resolve(spec)
    if args.json:
        print(json.dumps({
            "arch_id": spec.arch_id, "string": spec.to_string(), "input": list(spec.input),
            "classes": spec.classes, "params": count_params(ops), "macs": count_macs(ops),
            "ops": [{**op.fields(), "key": op.key, "params": op_params(op), "macs": op_macs(op)} for op in ops],
            "spec": spec.to_dict(),
        }, indent=2))
        return 0
    print(f"arch_id {spec.arch_id}   input {'x'.join(map(str, spec.input))}   classes {spec.classes}")
    print(f"params {count_params(ops):,}   MACs {count_macs(ops):,} ({count_macs(ops) / 1e6:.2f} M)")
    print(f"{'#':>3} {'type':<8} {'input':>12} {'output':>12} {'k':>2} {'s':>2} {'params':>10} {'MACs':>12}  details")
    for i, op in enumerate(ops):
        print(f"{i:>3} {op.type:<8} {'x'.join(map(str, op.input)):>12} {'x'.join(map(str, op.output)):>12} "
              f"{op.kernel or '':>2} {op.stride:>2} {op_params(op):>10,} {op_macs(op):>12,}  {_describe_op(op)}")
    print(f"spec: {spec.to_string()}")
    return 0


def cmd_sample(args) -> int:
    space_class(args.space)  # a clear error for an unknown name before anything else
    spec = get_space(args.space, args.input, args.classes).sample(args.seed)
    print(spec.to_json(indent=2))
    return 0


def cmd_list(args) -> int:
    for name in list_references():
        print(name)
    return 0
