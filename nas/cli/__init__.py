"""The ``nas`` command line: thin argument parsing over the library.

Each command group lives in its own module exposing ``register(subparsers)``; a command's
handler takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nas.spec import SpecError

COMMAND_MODULES = ("nas.cli.arch", "nas.cli.search", "nas.cli.train", "nas.cli.latency", "nas.cli.calibrate",
                   "nas.cli.export")


class UserError(Exception):
    """Bad input from the user: printed as ``error: ...`` without a traceback."""


def is_domain_error(exc: BaseException) -> bool:
    """Errors defined in this package (ConfigError, DataError, LatencyTableError, ...) describe
    bad input and carry a message for the user; anything else is a bug."""
    return type(exc).__module__.split(".")[0] == "nas"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Hardware-aware neural architecture search.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except (UserError, SpecError, FileNotFoundError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as exc:
        if not is_domain_error(exc):
            raise  # a bug: keep the traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
