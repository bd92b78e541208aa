"""``elbits evaluate CHECKPOINT``: rate, distortion, per-dimension KL, active units and I(X;Z), bits per
image.

CHECKPOINT is a disentangling-vae Burgess ``model.pt`` (or its folder) or an ``elbits train`` checkpoint.
Images: the procedural dSprites (a seeded random subset of ``--limit`` images; ``--limit 0``: all 737,280,
a GPU-sized job) or ``--images`` (a ``.npy`` uint8 {0, 1} ``[N, 64, 64]`` / ``[N, 1, 64, 64]``, or the
reference 10x10 PNG grid). D averages ``--samples`` draws z ~ q(z|x) per image. I(X;Z) is the ELBO-surgery
estimate for x uniform over the evaluated images (<= log2 N): see python/elbits/analysis.py and
docs/results.md.
"""

from __future__ import annotations

import argparse
import json

from ..data.dsprites import NUM_IMAGES
from ..errors import InputError
from ..experiments import evaluate as driver  # a module attribute: tests stand in for it
from ..report.evaluation import append_csv, format_text, plot_evaluation
from ._args import checkpoint, count_or_all, device, image_file, output_file, positive_int, seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="rate, distortion, KL per latent and I(X;Z) of a trained VAE, in bits",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "checkpoint",
        type=checkpoint("checkpoint.pt", "model.pt"),
        help="disentangling-vae model.pt (or folder) or elbits checkpoint.pt",
    )
    p.add_argument(
        "--images",
        type=image_file,
        default=None,
        help=".npy of binary 64x64 images, or the 10x10 reference PNG grid",
    )
    p.add_argument(
        "--limit",
        type=count_or_all,
        default=16384,
        help="procedural images (random subset); 0 = the whole grid (default %(default)s)",
    )
    p.add_argument("--data-seed", type=seed, default=0, help="which procedural images (default %(default)s)")
    p.add_argument(
        "--samples", type=positive_int, default=4, help="z draws per image for D (default %(default)s)"
    )
    p.add_argument(
        "--mi-points",
        type=count_or_all,
        default=2048,
        help="images whose z are sampled for I(X;Z); 0 = all (default %(default)s)",
    )
    p.add_argument(
        "--mi-samples", type=positive_int, default=4, help="z draws per such image (default %(default)s)"
    )
    p.add_argument(
        "--distortion-images",
        type=count_or_all,
        default=0,
        help="decode only this many (random) images for D; R and I(X;Z) use all (default 0: all)",
    )
    p.add_argument("--seed", type=seed, default=0, help="z noise and the I(X;Z) subset (default %(default)s)")
    p.add_argument(
        "--batch-size", type=positive_int, default=256, help="images per forward pass (default %(default)s)"
    )
    p.add_argument(
        "--device",
        type=device(),
        default="auto",
        help="auto (CUDA when present), cpu, cuda, cuda:N (must exist on this machine)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text report")
    p.add_argument(
        "--plot",
        type=output_file,
        default=None,
        help="also draw the KL per dimension and the R split to this PNG",
    )
    p.add_argument(
        "--csv", type=output_file, default=None, help="also append one row of the results to this CSV"
    )
    p.add_argument("--label", default=None, help="the row's name in --csv (default: the checkpoint path)")
    p.add_argument("--progress", action="store_true", help="a progress bar on stderr")
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    if args.label is not None and args.csv is None:
        raise InputError("--label names the row of --csv: give --csv FILE too")
    if args.images is None and args.limit > NUM_IMAGES:
        raise InputError(
            f"--limit {args.limit} is more than the {NUM_IMAGES} procedural dSprites images; "
            f"expected 0 (all) to {NUM_IMAGES}"
        )
    if args.plot is not None and args.plot == args.csv:
        raise InputError(f"--plot and --csv both name {args.plot}; expected two different files")


def run(args: argparse.Namespace) -> int:
    ev = driver.evaluate_checkpoint(
        args.checkpoint,
        args.images,
        limit=args.limit or None,
        data_seed=args.data_seed,
        device=args.device,
        samples=args.samples,
        seed=args.seed,
        batch_size=args.batch_size,
        mi_points=args.mi_points or None,
        mi_samples=args.mi_samples,
        progress=args.progress,
        distortion_images=args.distortion_images or None,
    )
    if args.plot:
        plot_evaluation(ev, args.plot)
    if args.csv:
        append_csv(ev.to_dict(), args.csv, args.label or args.checkpoint)
    if args.json:
        print(json.dumps(ev.to_dict()))
    else:
        print(format_text(ev))
    return 0
