"""``elbits sweep``: train one VAE per beta (or per rate target) and draw the rate-distortion frontier.

Writes OUT/sweep.csv (R, D, I(X;Z), KL(q(z)||p(z)), bits per image, per run), OUT/sweep_rd.png (the R-D plane
with the bounds D = sum_i H(X_i) at rate 0 and D + R >= H(X), the empirical frontier and its slopes) and
OUT/sweep_split.png (R split into I(X;Z) and prior mismatch). Each run's training files go to OUT/<label>/.
See docs/results.md for the settings used there and their wall times.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError
from ..experiments import sweep as driver  # a module attribute: tests stand in for run_sweep
from ..train import TrainConfig
from ._args import (
    checkpoint,
    count_or_all,
    float_list,
    nonnegative_float,
    output_dir,
    positive_float,
    positive_int,
)
from .train import add_train_arguments, check_train_args, config_kwargs

# Training options that the sweep does not take (controller, its settings, resume).
_NOT_SWEEP_OPTIONS = ("controller", "target_bits", "capacity_bits", "capacity_steps", "gamma", "resume")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="train over a list of betas / rate targets; CSV and R-D plot with bounds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--betas",
        type=float_list(nonnegative_float),
        default=[0.5, 1.0, 2.0, 4.0, 8.0],
        help="fixed betas, comma separated (default 0.5,1,2,4,8; '' for none)",
    )
    p.add_argument(
        "--targets",
        type=float_list(positive_float),
        default=[],
        help="rate targets in bits for the target-rate controller, comma separated",
    )
    p.add_argument(
        "--out", type=output_dir, default="elbits-sweep", help="output folder (default %(default)s)"
    )
    p.add_argument(
        "--eval-images",
        type=count_or_all,
        default=4096,
        help="training images each model is evaluated on (evenly spaced); 0 = all (default %(default)s)",
    )
    p.add_argument(
        "--samples", type=positive_int, default=4, help="z draws per image for D (default %(default)s)"
    )
    p.add_argument(
        "--mi-points",
        type=count_or_all,
        default=1024,
        help="images sampled for I(X;Z); 0 = all (default %(default)s)",
    )
    p.add_argument(
        "--mi-samples", type=positive_int, default=4, help="z draws per such image (default %(default)s)"
    )
    p.add_argument("--no-plot", action="store_true", help="CSV only")
    p.add_argument(
        "--init",
        type=checkpoint("checkpoint.pt", "model.pt"),
        default=None,
        help="start every run from this checkpoint (disentangling-vae model.pt or elbits checkpoint.pt)",
    )
    defaults = TrainConfig().to_dict()
    defaults.update(steps=400, train_size=4096, log_every=50)
    add_train_arguments(p, defaults)
    for action in p._actions:
        # The sweep sets these per run itself; check() names the option to use instead.
        if action.dest in _NOT_SWEEP_OPTIONS:
            action.help = argparse.SUPPRESS
    p.set_defaults(func=run, check=check, controller="fixed")


def check(args: argparse.Namespace) -> None:
    if not args.betas and not args.targets:
        raise InputError("nothing to train: give at least one value in --betas or --targets")
    for flag, values in (("--betas", args.betas), ("--targets", args.targets)):
        # Each run writes OUT/<value, 6 digits>/: a repeat would overwrite the first.
        names = [f"{v:g}" for v in values]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InputError(f"{flag} lists {', '.join(twice)} more than once (to 6 significant digits)")
    if args.controller != "fixed":
        raise InputError(
            "the sweep picks the controller itself (fixed for --betas, target-rate for --targets): "
            "drop --controller"
        )
    if args.target_bits is not None:
        raise InputError("--target-bits is not a sweep option: list the rate targets in --targets")
    if args.resume is not None:
        raise InputError("the sweep trains every run afresh: drop --resume (start from a model with --init)")
    if args.capacity_steps is not None:
        raise InputError("the sweep trains with fixed beta or target-rate: drop --capacity-steps")
    check_train_args(args, Path(args.out))


def run(args: argparse.Namespace) -> int:
    kw = config_kwargs(args)
    kw.update(controller="fixed", resume=None)
    base = TrainConfig(out_dir=args.out, **kw)
    res = driver.run_sweep(
        base,
        args.betas,
        args.targets,
        out_dir=args.out,
        eval_images=args.eval_images or None,
        samples=args.samples,
        mi_points=args.mi_points or None,
        mi_samples=args.mi_samples,
        plot=not args.no_plot,
        init=args.init,
    )
    fr = res.frontier
    print(
        json.dumps(
            {
                "points": [p.row() for p in res.points],
                "frontier_slopes": list(fr.slopes),
                "budget": res.budget.to_dict(),
                "seconds": round(res.seconds, 1),
            }
        )
    )
    print(f"csv: {res.csv_path}" + "".join(f", plot: {p}" for p in res.plots))
    return 0
