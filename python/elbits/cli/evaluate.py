"""``elbits evaluate CHECKPOINT``: rate, distortion, per-dimension KL, active units and I(X;Z), bits per
image.

CHECKPOINT is a disentangling-vae Burgess ``model.pt`` (or its folder) or an ``elbits train`` checkpoint.
Images of a dSprites model: the procedural dSprites (a seeded random subset of ``--limit`` images;
``--limit 0``: all 737,280, a GPU-sized job) or ``--images`` (a ``.npy`` uint8 {0, 1} ``[N, 64, 64]`` /
``[N, 1, 64, 64]``, or the reference 10x10 PNG grid). Images of a colour model (``elbits train --data ...``):
``--images PATH`` (a folder of PNG/JPEG, an image file or a uint8 array, with ``--preprocess`` as in train),
``--data photos`` or ``colour-sprites``, by default the set it trained on, at its ``--size``; ``--limit``
of them. Figures in bits per image and bits/dim. D averages ``--samples`` draws z ~ q(z|x) per image.
I(X;Z) is the ELBO-surgery estimate for x uniform over the evaluated images (<= log2 N): see
python/elbits/analysis.py and docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import os

from ..data.dsprites import NUM_IMAGES
from ..data.images import PREPROCESS
from ..errors import InputError
from ..experiments import evaluate as driver  # a module attribute: tests stand in for it
from ..models.checkpoints import load_model
from ..report.evaluation import append_csv, format_text, plot_evaluation
from ..train.config import SIZES
from ._args import checkpoint, count_or_all, device, image_source, output_file, positive_int, seed

_SUFFIXES = (".npy", ".npz", ".png", ".jpg", ".jpeg")


def evaluation_images(text: str) -> str:
    """--images: a readable .npy / .npz / PNG / JPEG file, or a folder of images (a colour model's; the
    driver tells a dSprites model's user that it reads files)."""
    if text and not os.path.lexists(text):
        raise argparse.ArgumentTypeError(f"no such file or folder: {text!r}")
    image_source(text)
    if not os.path.isdir(text) and os.path.splitext(text)[1].lower() not in _SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a .npy of binary 64x64 images or the reference 10x10 .png grid (dSprites "
            "models), or a folder of PNG/JPEG images, an image file or a uint8 .npy / .npz (colour models)"
        )
    return text


evaluation_images.__name__ = "image_source"  # a path the user named (the CLI's OSError messages)


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
        type=evaluation_images,
        default=None,
        metavar="PATH",
        help="dSprites models: a .npy of binary 64x64 images or the 10x10 reference PNG grid; colour models: "
        "a folder of PNG/JPEG images, an image file or a uint8 .npy / .npz [N, C, H, W]",
    )
    p.add_argument(
        "--data",
        choices=("dsprites", "colour-sprites", "photos"),
        default=None,
        help="the images by name (default: procedural dSprites, or a colour model's training set)",
    )
    p.add_argument(
        "--size",
        type=int,
        choices=SIZES,
        default=None,
        help="colour images' side in pixels (default: the checkpoint's)",
    )
    p.add_argument(
        "--preprocess",
        choices=PREPROCESS,
        default=None,
        help="--images of a colour model: how images are cropped and resized (as in elbits train)",
    )
    p.add_argument(
        "--limit",
        type=count_or_all,
        default=16384,
        help="images evaluated (a random subset); 0 = all of them (default %(default)s)",
    )
    p.add_argument("--data-seed", type=seed, default=0, help="which images (default %(default)s)")
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
    if args.images is not None and args.data is not None:
        raise InputError(f"--images {args.images} and --data {args.data} name two image sets: give one")
    if args.preprocess is not None and args.images is None:
        raise InputError("--preprocess is for --images PATH (how its images are cropped and resized)")
    if args.images is not None and os.path.isdir(args.images):
        # Only a colour model reads a folder; which kind the checkpoint is, its file says (a few MB read).
        try:
            info = load_model(args.checkpoint)[1]
        except InputError as e:
            raise InputError(
                f"--images {args.images} is a folder, which only a colour checkpoint reads, and {e}"
            ) from None
        if not info.get("colour"):
            raise InputError(
                f"--images {args.images} is a folder; {info['path']} is a binary dSprites model, which reads "
                "a .npy of 0/1 images [N, 64, 64] or the reference PNG grid"
            )
    if args.images is None and args.data in (None, "dsprites") and args.limit > NUM_IMAGES:
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
        data=args.data,
        size=args.size,
        preprocess=args.preprocess,
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
        examples=8 if args.plot else 0,
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
