"""The ``elbits`` command line: one module per subcommand, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Optional

# Subcommand modules (in elbits.cli); each defines register(subparsers) which adds
# its parser and sets ``func`` (a callable taking the parsed args, returning an exit code).
SUBCOMMANDS = ["example", "entropy_cmd", "bench", "train", "demo", "evaluate", "sweep"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elbits", description="VAE loss terms in nats and bits: fused kernels, entropy budgets, calibration."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)
