"""``elbits demo``: train a beta-VAE on procedural dSprites on the CPU in minutes and write a report of its
rate and distortion in bits against the data's budget (report.md and PNG plots).

``elbits demo colour``: train the colour VAE with the logistic mixture on scikit-image's photo patches
(32 px; needs ``pip install 'elbits[colour]'``) and report its -ELBO in bits/dim beside the bounds on the
patches' entropy (PNG, WebP, JPEG-XL lossless, log2 N, I(X;Z), the bits-back codec). The training options
default to the colour recipe there (shown in each option's help as "colour: ..."); an --out folder that
holds files is refused unless --overwrite."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..experiments import demo as driver  # a module attribute: tests stand in for run_demo
from ..train import TrainConfig, TrainingInterrupted
from ._args import nonnegative_int, output_dir
from .train import add_train_arguments, check_train_args, config_kwargs

JOBS = ("dsprites", "colour")


class RecipeDefault:
    """An option's default that depends on the job: the dSprites demo's value, or the colour recipe's.

    argparse keeps a non-string default as it is and converts what the user types, so a value still of
    this type after parsing was not given, and :func:`resolve` puts the job's value in its place."""

    def __init__(self, dsprites: Any, colour: Any) -> None:
        self.dsprites, self.colour = dsprites, colour

    def __str__(self) -> str:  # what %(default)s shows in --help
        show = {None: "all", True: "on", False: "off"}
        c = show.get(self.colour, self.colour) if isinstance(self.colour, (bool, type(None))) else self.colour
        return f"{self.dsprites}; colour: {c}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train a beta-VAE on dSprites (or colour photo patches) for a few CPU minutes; write a report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "job",
        nargs="?",
        choices=JOBS,
        default="dsprites",
        help="dsprites (the default main job) or colour (photo patches, bits/dim against lossless codecs)",
    )
    p.add_argument(
        "--out", type=output_dir, default="elbits-report", help="report folder (default %(default)s)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.add_argument(
        "--codec-images",
        type=nonnegative_int,
        default=None,
        help="colour: images the bits-back codec row is measured on, evenly spaced (seconds each on a CPU); "
        f"0: no codec row (default {driver.COLOUR_CODEC_IMAGES})",
    )
    add_train_arguments(p, {**TrainConfig().to_dict(), **driver.DEMO_DEFAULTS})
    dsprites = {**TrainConfig().to_dict(), **driver.DEMO_DEFAULTS, "likelihood": "bernoulli"}
    for action in p._actions:
        if action.dest in driver.COLOUR_DEMO_DEFAULTS and action.dest in dsprites:
            action.default = RecipeDefault(dsprites[action.dest], driver.COLOUR_DEMO_DEFAULTS[action.dest])
    p.set_defaults(func=run, check=check)


def resolve(args: argparse.Namespace) -> None:
    """Put the job's recipe value in place of every training option not given (idempotent); the colour
    job reads the photo patches at the recipe's size."""
    for k, v in vars(args).items():
        if isinstance(v, RecipeDefault):
            setattr(args, k, v.colour if args.job == "colour" else v.dsprites)
    if args.job == "colour":
        args.data, args.size = driver.COLOUR_DEMO_DEFAULTS["data"], driver.COLOUR_DEMO_DEFAULTS["size"]


def check(args: argparse.Namespace) -> None:
    resolve(args)
    if args.job != "colour" and args.codec_images is not None:
        raise InputError("--codec-images is for elbits demo colour (the bounds table's bits-back codec row)")
    if args.job == "colour" and args.resume is not None:
        raise InputError("elbits demo colour starts afresh each time: --resume is for elbits train")
    check_train_args(args, Path(args.out) / "run")  # where run_demo puts the training files


def run(args: argparse.Namespace) -> int:
    resolve(args)
    kw = config_kwargs(args)
    kw["progress"] = kw["progress"] and not args.quiet
    command = "elbits demo" + (
        " " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 and sys.argv[1] == "demo" else ""
    )
    try:
        if args.job == "colour":
            overwrite = kw.pop("overwrite")
            for k in ("images", "preprocess", "resume"):
                kw.pop(k)
            codec = driver.COLOUR_CODEC_IMAGES if args.codec_images is None else args.codec_images
            driver.run_colour_demo(
                args.out, command=command, quiet=args.quiet, overwrite=overwrite, codec_images=codec, **kw
            )
        else:
            driver.run_demo(args.out, command=command, quiet=args.quiet, **kw)
    except TrainingInterrupted as e:
        print(f"elbits demo: {e}", file=sys.stderr)
        return 130
    return 0
