"""What the ``nas latency`` commands share: the command group, the space and measurement
options, and how latency errors reach the user. Both nas.cli.latency and
nas.cli.latency_validate import it, so neither imports the other's internals."""

from __future__ import annotations

import argparse
import functools
import os

from nas.cli import UserError
from nas.cli.arch import positive_int, shape_arg
from nas.latency.errors import InputShapeError, LatencyTableError, MissingOpsError
from nas.latency.runner import OPTIMIZATIONS, Protocol
from nas.space import FASHION_MNIST

DEFAULT_PROTOCOL = Protocol()  # the project's measurement protocol: the options' defaults


def latency_group(subparsers):
    """The ``latency`` command group's sub-parsers, created by whichever module comes first
    (nas.cli.calibrate adds ``calibrate`` to the same group)."""
    latency = subparsers.choices.get("latency")
    if latency is None:
        latency = subparsers.add_parser("latency", help="latency tables and models: profile, bundle, import, "
                                                        "tables, predict, validate, compose, calibrate")
        group = latency.add_subparsers(dest="latency_command", metavar="COMMAND")
        group.required = True
        return group
    return next(a for a in latency._actions if isinstance(a, argparse._SubParsersAction))


def user_errors(handler):
    """Latency errors are bad input: shown as ``error: ...`` (exit 2), without a traceback."""

    @functools.wraps(handler)
    def wrapped(args):
        try:
            return handler(args)
        except (LatencyTableError, MissingOpsError, InputShapeError) as exc:
            raise UserError(str(exc)) from None

    return wrapped


def protocol_args(p) -> None:
    d = DEFAULT_PROTOCOL
    p.add_argument("--threads", type=positive_int, default=d.threads, help=f"intra-op threads (default {d.threads})")
    p.add_argument("--warmup", type=int, default=d.warmup,
                   help=f"untimed calls per model before timing (default {d.warmup})")
    p.add_argument("--repeats", type=positive_int, default=d.repeats,
                   help=f"timed calls per model (default {d.repeats})")
    p.add_argument("--rounds", type=positive_int, default=d.rounds,
                   help=f"interleaved rounds the repeats are split into (default {d.rounds})")
    p.add_argument("--cpu", type=int, default=d.cpu, help="index of the allowed CPU to pin to (-1: the last)")
    p.add_argument("--optimization", choices=tuple(OPTIMIZATIONS), default=None,
                   help=f"ONNX Runtime graph optimisation level (default {d.optimization}; validate/compose: "
                        "the table's)")
    p.add_argument("--device", help="device name for the provenance (default: host name)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def space_args(p, required: bool = True) -> None:
    p.add_argument("--space", required=required, help="search space (see `nas spaces`)")
    p.add_argument("--input", type=shape_arg, default=FASHION_MNIST,
                   help=f"input shape HxWxC (default {'x'.join(map(str, FASHION_MNIST))})")
    p.add_argument("--classes", type=positive_int, default=None, help="classes (default 10, or 1000 from 64 px)")


def classes_from_args(args) -> int:
    """--classes, else 10 for small inputs (Fashion-MNIST, CIFAR) and 1000 from 64 px (ImageNet)."""
    return args.classes or (10 if min(args.input[:2]) < 64 else 1000)


def protocol_from_args(args, optimization: str | None = None) -> Protocol:
    """The measurement protocol the options ask for (``optimization``: the table's, when given)."""
    _check_cpu(args.cpu)
    try:
        return Protocol(args.warmup, args.repeats, args.rounds, threads=args.threads, cpu=args.cpu,
                        optimization=optimization or args.optimization or DEFAULT_PROTOCOL.optimization)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _check_cpu(index: int | None) -> None:
    """--cpu indexes the CPUs this process may run on; out of range is a typo, not 'the last'."""
    if index is None or not hasattr(os, "sched_getaffinity"):
        return
    allowed = len(os.sched_getaffinity(0))
    if not -allowed <= index < allowed:
        raise UserError(f"--cpu {index} is out of range: this process may run on {allowed} CPU(s), "
                        f"so --cpu must be in [{-allowed}, {allowed - 1}] (-1: the last)")
