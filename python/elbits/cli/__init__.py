"""The ``elbits`` command line: one module per subcommand, each with ``register(subparsers)``.

A user error (a bad flag, a missing file, a setting the library rejects with
:class:`elbits.errors.InputError`, an OS error about a path the user gave) prints one line,
``elbits <command>: error: <what, and what was expected>``, and exits with status 2; ``--debug`` shows its
traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, Optional

from ..errors import InputError
from ._args import PATH_TYPES

# Subcommand modules (in elbits.cli); each defines register(subparsers) which adds its parser and sets
# ``func`` (a callable taking the parsed args, returning an exit code) and, optionally, ``check`` (the
# cross-flag rules: raises InputError before any work starts).
SUBCOMMANDS = ["example", "entropy_cmd", "bench", "train", "demo", "evaluate", "sweep", "compress"]

#: Exit status of a user error (argparse's own).
USAGE_ERROR = 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors, ``<prog>: error: <message>`` and exit 2; ``-h`` shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="elbits",
        description="VAE loss terms in nats and bits: fused kernels, entropy budgets, calibration.",
    )
    debug_help = "show the traceback of a user error instead of its one-line message"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # subparsers are Parsers too
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    for p in sub.choices.values():
        # SUPPRESS: a subcommand without --debug leaves the top-level value in place.
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    return parser


def _command_parser(
    parser: argparse.ArgumentParser, command: Optional[str]
) -> Optional[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return None


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {_one_line(message)}", file=sys.stderr)
    return USAGE_ERROR


def _is_user_path(err: OSError, args: argparse.Namespace, cmd: argparse.ArgumentParser) -> bool:
    """Whether ``err`` is about a path the user named (or a file inside such a folder)."""
    given = [
        os.path.abspath(v)
        for a in cmd._actions
        if getattr(a.type, "__name__", None) in PATH_TYPES
        for v in [getattr(args, a.dest, None)]
        if isinstance(v, str) and v
    ]
    for name in (err.filename, err.filename2):
        if isinstance(name, (str, os.PathLike)):
            p = os.path.abspath(os.fspath(name))
            if any(p == g or p.startswith(g.rstrip(os.sep) + os.sep) for g in given):
                return True
    return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``elbits`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        cmd = _command_parser(parser, args.command)
        if extra:
            # The top-level parser would name itself; the subcommand's options are what was mistyped.
            (cmd or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # argparse's exit after -h or an error it has printed
        return e.code if isinstance(e.code, int) else 0
    if cmd is None:
        parser.print_help()
        return USAGE_ERROR
    try:
        if getattr(args, "check", None):
            args.check(args)
        return int(args.func(args) or 0)
    except InputError as e:
        if args.debug:
            raise
        return _fail(cmd.prog, str(e))
    except OSError as e:
        if args.debug or not _is_user_path(e, args, cmd):
            raise
        return _fail(cmd.prog, f"{e.filename}: {e.strerror or e}")
