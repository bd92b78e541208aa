"""``elbits demo``: train a beta-VAE on procedural dSprites on the CPU in minutes and write a report of its
rate
and distortion in bits against the data's budget (report.md and PNG plots)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..experiments import demo as driver  # a module attribute: tests stand in for run_demo
from ..train import TrainConfig, TrainingInterrupted
from ._args import output_dir
from .train import add_train_arguments, check_train_args, config_kwargs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train a beta-VAE on dSprites for a few CPU minutes and write a report",
        description=__doc__,
    )
    p.add_argument(
        "--out", type=output_dir, default="elbits-report", help="report folder (default %(default)s)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    add_train_arguments(p, {**TrainConfig().to_dict(), **driver.DEMO_DEFAULTS})
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    check_train_args(args, Path(args.out) / "run")  # where run_demo puts the training files


def run(args: argparse.Namespace) -> int:
    kw = config_kwargs(args)
    kw["progress"] = kw["progress"] and not args.quiet
    command = "elbits demo" + (
        " " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 and sys.argv[1] == "demo" else ""
    )
    try:
        driver.run_demo(args.out, command=command, quiet=args.quiet, **kw)
    except TrainingInterrupted as e:
        print(f"elbits demo: {e}", file=sys.stderr)
        return 130
    return 0
