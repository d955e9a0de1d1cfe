"""The ``nas`` command line: thin argument parsing over the library.

Each command group lives in its own module exposing ``register(subparsers)``; a command's
handler takes the parsed arguments and returns an exit code.

Every failure a user can cause (bad input, a missing or unreadable file, a full disk, a
folder that cannot be written) ends as one line, ``error: ...``, and exit code 2. An
unexpected exception (a bug) ends as one line too, ``error: internal error ...``, and exit
code 1; ``--debug`` (or ``NAS_DEBUG=1``) shows the traceback of either instead.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

# command -> the module that registers it; a command's own module is imported alone, so that
# `nas arch ...` does not pay for importing the search, the report and the exporter
COMMANDS = {"spaces": "nas.cli.arch", "arch": "nas.cli.arch", "search": "nas.cli.search",
            "report": "nas.cli.search", "pareto": "nas.cli.search", "train": "nas.cli.train",
            "latency": ("nas.cli.latency", "nas.cli.calibrate"), "export": "nas.cli.export",
            "verify": "nas.cli.verify"}
COMMAND_MODULES = ("nas.cli.arch", "nas.cli.search", "nas.cli.train", "nas.cli.latency", "nas.cli.calibrate",
                   "nas.cli.export", "nas.cli.verify")


class UserError(Exception):
    """Bad input from the user: printed as ``error: ...`` without a traceback."""


def is_domain_error(exc: BaseException) -> bool:
    """Errors defined in this package (ConfigError, DataError, LatencyTableError, ...) describe
    bad input and carry a message for the user; anything else is a bug."""
    return type(exc).__module__.split(".")[0] == "nas"


def debug_requested(argv: list[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("NAS_DEBUG", "").strip().lower() in ("1", "true", "yes")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the modules of the command it names are imported (all of
    them when it names none, e.g. for ``nas --help``)."""
    parser = argparse.ArgumentParser(prog="nas", description="Hardware-aware neural architecture search.")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (also: environment NAS_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    command = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    chosen = COMMANDS.get(command) if command else None
    names = (chosen,) if isinstance(chosen, str) else chosen or COMMAND_MODULES
    for name in names:
        importlib.import_module(name).register(subparsers)
    return parser


def describe_os_error(exc: OSError) -> str:
    """An OSError as a sentence that names the path and what went wrong."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        reason = "no space left on device (the disk is full)"
    elif exc.errno == errno.EROFS:
        reason = "read-only file system"
    elif exc.errno == errno.ENAMETOOLONG:
        reason = "file name too long (at most 255 bytes per path component)"
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{reason}: {' -> '.join(repr(p) for p in paths)}" if paths else reason


def describe(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code of an exception that ends a command."""
    if isinstance(exc, OSError) and not is_domain_error(exc):
        return describe_os_error(exc), 2
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not text (UTF-8): {exc.reason} at byte {exc.start}", 2
    if isinstance(exc, UserError) or is_domain_error(exc):
        return str(exc), 2
    detail = str(exc).splitlines()[0][:300] if str(exc) else ""
    return (f"internal error ({type(exc).__name__}{': ' + detail if detail else ''}); this is a bug: "
            "run again with --debug (or NAS_DEBUG=1) for the traceback and report it"), 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line, not only first
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except SystemExit:
        raise  # argparse's own usage errors and --help
    except Exception as exc:
        if debug:
            raise
        message, code = describe(exc)
        print(f"error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
