"""``elbits train``: fit a VAE on dSprites or 8-bit colour images with the fused ELBOLoss, a beta controller
and the rate-distortion meter.

Colour data (``--data colour-sprites``, ``--data photos`` or ``--images DIR``) trains the colour conv VAE with
an 8-bit likelihood (``--likelihood logistic_mixture`` by default, ``categorical256``,
``discretized_gaussian``) at ``--size 32`` or ``64``; its figures are in bits/dim as well as bits/image.

Multi-process: ``torchrun --nproc-per-node N -m elbits train ...`` (DDP; gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .. import train as training  # a module attribute: tests stand in for training.train
from ..data.dsprites import NUM_IMAGES
from ..data.images import PREPROCESS
from ..errors import InputError
from ..models.colour import COLOUR_LIKELIHOODS
from ..train import CONTROLLERS, TrainConfig, TrainingInterrupted, training_likelihoods
from ..train.config import SIZES
from ._args import (
    checkpoint,
    count_or_all,
    device,
    image_source,
    nonnegative_float,
    nonnegative_int,
    output_dir,
    positive_float,
    positive_int,
    readable_file,
    seed,
)


def add_train_arguments(p: argparse.ArgumentParser, defaults: dict) -> None:
    """The TrainConfig options shared by ``train`` and ``demo`` (``defaults``: shown in the help)."""
    g = p.add_argument_group("training")
    g.add_argument(
        "--steps", type=positive_int, default=defaults["steps"], help="optimiser steps (default %(default)s)"
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=defaults["batch_size"],
        help="images per step and process (default %(default)s)",
    )
    g.add_argument(
        "--lr", type=positive_float, default=defaults["lr"], help="AdamW learning rate (default %(default)s)"
    )
    g.add_argument(
        "--weight-decay",
        type=nonnegative_float,
        default=defaults["weight_decay"],
        help="AdamW weight decay (default %(default)s)",
    )
    g.add_argument("--seed", type=seed, default=defaults["seed"], help="model init, data order and z noise")
    g.add_argument(
        "--z-dim",
        type=positive_int,
        default=defaults["z_dim"],
        help="latent dimensions (default %(default)s)",
    )
    g.add_argument(
        "--controller",
        choices=CONTROLLERS,
        default=defaults["controller"],
        help="beta controller (default %(default)s)",
    )
    g.add_argument(
        "--beta",
        type=nonnegative_float,
        default=defaults["beta"],
        help="fixed beta, or the starting beta of target-rate (nats of D per nat of R)",
    )
    g.add_argument(
        "--target-bits",
        type=positive_float,
        default=None,
        help="geco: distortion target; target-rate: rate target (default H(X) of the training set)",
    )
    g.add_argument(
        "--capacity-bits",
        type=positive_float,
        default=defaults["capacity_bits"],
        help="capacity: final C, bits per image (default %(default)s)",
    )
    g.add_argument(
        "--capacity-steps",
        type=positive_int,
        default=None,
        help="capacity: steps to reach C (default: --steps)",
    )
    g.add_argument(
        "--gamma",
        type=positive_float,
        default=defaults["gamma"],
        help="capacity: gamma (default %(default)s)",
    )
    g.add_argument(
        "--controller-lr",
        type=positive_float,
        default=defaults["controller_lr"],
        help="geco / target-rate step size (default %(default)s)",
    )
    lk = p.add_argument_group("likelihood")
    lk.add_argument(
        "--likelihood",
        choices=training_likelihoods(),
        default=defaults["likelihood"],
        help="the decoder's likelihood; the model's output channels follow it (default "
        + (
            "%(default)s)"
            if defaults["likelihood"] is not None
            else "bernoulli for dSprites, logistic_mixture for colour data)"
        ),
    )
    lk.add_argument(
        "--mixture-components",
        "--mixtures",
        dest="mixture_components",
        type=positive_int,
        default=defaults["mixture_components"],
        help="logistic_mixture: components K per subpixel (default %(default)s: half of PixelCNN++'s 10, "
        "whose pixels are autoregressive; a VAE decoder's are independent given z, and 10K output "
        "channels is 50 for RGB)",
    )
    lk.add_argument(
        "--scale",
        type=positive_float,
        default=None,
        help="gaussian / laplace: a fixed sigma / b (images in [0, 1]); the decoder then emits means "
        "only (default: it emits a log-scale per subpixel too)",
    )
    lk.add_argument(
        "--discretize",
        action="store_true",
        help="gaussian / laplace: the code length of the 8-bit levels instead of the density",
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--npz",
        type=readable_file,
        default=None,
        help="the real dsprites_ndarray_...npz (default: procedural dSprites)",
    )
    d.add_argument(
        "--train-size",
        type=count_or_all,
        default=defaults["train_size"],
        help="training images drawn from the set; 0 = all (default %(default)s)",
    )
    d.add_argument(
        "--data-seed", type=seed, default=defaults["data_seed"], help="which images (default %(default)s)"
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--log-every",
        type=positive_int,
        default=defaults["log_every"],
        help="steps per metrics record (default %(default)s)",
    )
    o.add_argument(
        "--checkpoint-every",
        type=nonnegative_int,
        default=defaults["checkpoint_every"],
        help="steps per checkpoint (0: at the end only)",
    )
    o.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        type=checkpoint("checkpoint.pt", auto=True),
        help="continue from OUT/checkpoint.pt, or from the checkpoint PATH given",
    )
    o.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in the output folder (default: refuse it)",
    )
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard scalars even if installed")
    o.add_argument(
        "--device",
        type=device(),
        default="auto",
        help="auto (CUDA when present), cpu, cuda, cuda:1, ... (must exist on this machine)",
    )


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """``--data``, ``--images``, ``--size`` and ``--preprocess``: the training set, dSprites or colour."""
    d = p.add_argument_group("colour data")
    d.add_argument(
        "--data",
        choices=("dsprites", "colour-sprites", "photos"),
        default=None,
        help="the training set: binary dSprites (default), the generated colour sprites (H(X) = log2 N "
        "known) or scikit-image's photographs cut into patches (needs elbits[colour])",
    )
    d.add_argument(
        "--images",
        type=image_source,
        default=None,
        metavar="PATH",
        help="train on the PNG/JPEG images in folder PATH (recursive; CelebA's img_align_celeba/ as it "
        "is), one image file, or a uint8 .npy / .npz array [N, C, H, W]",
    )
    d.add_argument(
        "--size",
        type=int,
        choices=SIZES,
        default=None,
        help="colour images' side in pixels (default: 32 for photos, else 64)",
    )
    d.add_argument(
        "--preprocess",
        choices=PREPROCESS,
        default=None,
        help="--images: celeba64 / celeba32 (centre crop 148, then resize; the default for image files), "
        "resize, or none (the default for arrays)",
    )


def _data_source(args: argparse.Namespace) -> str:
    if getattr(args, "images", None) is not None:
        return "images"
    return getattr(args, "data", None) or "dsprites"


def config_kwargs(args: argparse.Namespace) -> dict:
    data = _data_source(args)
    likelihood = args.likelihood or ("bernoulli" if data == "dsprites" else "logistic_mixture")
    return {
        "data": data,
        "images": getattr(args, "images", None),
        "size": getattr(args, "size", None),
        "preprocess": getattr(args, "preprocess", None),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "z_dim": args.z_dim,
        "controller": args.controller,
        "beta": args.beta,
        "target_bits": args.target_bits,
        "capacity_bits": args.capacity_bits,
        "capacity_steps": args.capacity_steps,
        "gamma": args.gamma,
        "controller_lr": args.controller_lr,
        "npz": args.npz,
        "train_size": args.train_size or None,
        "data_seed": args.data_seed,
        "log_every": args.log_every,
        "checkpoint_every": args.checkpoint_every,
        "resume": args.resume,
        "progress": not args.no_progress,
        "tensorboard": not args.no_tensorboard,
        "device": args.device,
        "likelihood": likelihood,
        "mixture_components": args.mixture_components,
        "scale": args.scale,
        "discretize": args.discretize,
        "overwrite": args.overwrite,
    }


def check_train_args(args: argparse.Namespace, run_dir: Path) -> None:
    """The cross-flag rules of the training options, before any work starts (``run_dir``: where the
    run's checkpoint.pt goes)."""
    data = _data_source(args)
    if getattr(args, "images", None) is not None and getattr(args, "data", None) is not None:
        raise InputError(f"--images PATH and --data {args.data} name two training sets: give one")
    size = getattr(args, "size", None)
    if data == "dsprites" and size not in (None, 64):
        raise InputError(
            f"--size {size} is for colour data (--data colour-sprites, photos, --images); dSprites is 64x64"
        )
    if getattr(args, "preprocess", None) is not None and data != "images":
        raise InputError("--preprocess is for --images PATH (how its images are cropped and resized)")
    if data != "dsprites":
        if args.npz is not None:
            raise InputError(f"--npz is the real dSprites file; it does not go with {_data_name(args)}")
        if args.likelihood is not None and args.likelihood not in COLOUR_LIKELIHOODS:
            raise InputError(
                f"--likelihood {args.likelihood} does not model 8-bit colour data ({_data_name(args)}): "
                f"expected one of {', '.join(COLOUR_LIKELIHOODS)}"
            )
    c = args.controller
    if c == "geco" and args.target_bits is None:
        raise InputError("--controller geco needs --target-bits (the distortion to reach, bits per image)")
    if args.target_bits is not None and c not in ("geco", "target-rate"):
        raise InputError(f"--target-bits is used only by --controller geco or target-rate, not {c}")
    if args.capacity_steps is not None and c != "capacity":
        raise InputError(f"--capacity-steps is used only by --controller capacity, not {c}")
    if c == "target-rate" and args.beta == 0:
        raise InputError("--controller target-rate scales beta up and down from --beta: expected --beta > 0")
    if data == "dsprites" and args.npz is None and args.train_size > NUM_IMAGES:
        raise InputError(
            f"--train-size {args.train_size} is more than the {NUM_IMAGES} procedural dSprites "
            f"images; expected 0 (all) to {NUM_IMAGES}"
        )
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)  # torchrun: each process gets train_size / world
    if args.train_size and args.train_size // world < args.batch_size:
        raise InputError(
            f"--train-size {args.train_size} over {world} process(es) is less than one batch of "
            f"--batch-size {args.batch_size}; expected --train-size >= {args.batch_size * world}"
        )
    if args.resume is not None and args.overwrite:
        raise InputError(
            "--resume continues the run in the output folder and --overwrite replaces it: give one"
        )
    if args.resume == "auto" and not (run_dir / "checkpoint.pt").is_file():
        raise InputError(
            f"--resume: no {run_dir / 'checkpoint.pt'} to continue from; give the checkpoint's "
            "path, or drop --resume to start afresh"
        )


def _data_name(args: argparse.Namespace) -> str:
    return f"--images {args.images}" if getattr(args, "images", None) is not None else f"--data {args.data}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a VAE on dSprites or colour images; rate and distortion in bits, checkpoints, DDP",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out",
        type=output_dir,
        default="elbits-run",
        help="folder for metrics.jsonl, checkpoint.pt, final.json, tb/ (default %(default)s)",
    )
    add_train_arguments(p, {**TrainConfig().to_dict(), "likelihood": None})
    add_data_arguments(p)
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    check_train_args(args, Path(args.out))


def run(args: argparse.Namespace) -> int:
    cfg = TrainConfig(out_dir=args.out, **config_kwargs(args))
    try:
        result = training.train(cfg)
    except TrainingInterrupted as e:
        print(f"elbits train: {e}", file=sys.stderr)
        return 130
    if result.rank == 0 and result.final is not None:
        f = result.final
        keys: tuple[str, ...] = (
            "rate_bits",
            "distortion_bits",
            "nelbo_bits",
            "budget_bits",
            "bound_bits",
            "bound_slack_bits",
            "active_units",
            "beta",
        )
        if cfg.colour:  # bits/dim is the unit colour models are compared in
            keys = ("nelbo_bits_per_dim", "distortion_bits_per_dim", "rate_bits_per_dim", *keys)
        print(
            json.dumps(
                {
                    "step": result.step,
                    "train_s": round(result.seconds, 2),
                    **{k: f[k] for k in keys if k in f},
                }
            )
        )
        print(f"metrics: {result.out_dir / 'metrics.jsonl'}, checkpoint: {result.out_dir / 'checkpoint.pt'}")
    return 0
