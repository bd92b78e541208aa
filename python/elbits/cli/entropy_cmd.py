"""``elbits entropy``: what a data set needs, in bits.

``elbits entropy dsprites``: factor entropy, exact H(X) and pixel marginals in bits and nats per image. The
full procedural set (737,280 images) is rendered and hashed in one streaming pass; see
docs/data-and-entropy.md for its timing. ``--limit N`` takes N evenly spaced indices instead.

``elbits entropy images DIR | photos | colour-sprites``: the bounds table of a colour set in bits/image and
bits/dim (raw 8 bits/dim, PNG, WebP and JPEG-XL lossless per image, lzma/bz2/zstd over the set, log2 N, log2
distinct, exact H(set); with ``--checkpoint`` the model's -ELBO, I(X;Z) and the bits-back codec's size), each
row marked with what it bounds: H(set), the entropy of the listed images, or H(p), of the distribution behind
them. Without ``imagecodecs`` the WebP, JPEG-XL and zstd rows are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from .. import entropy as E
from ..data import dsprites as ds
from ..data.colour_sprites import colour_sprites
from ..data.images import load_images
from ..data.photos import photo_patches
from ..entropy import empirical_entropy, image_bounds
from ..errors import InputError
from ..experiments.compress import likelihood_of
from ..models.checkpoints import load_model
from ..units import Quantity
from ._args import checkpoint, positive_int, readable_file

DATASETS = ["dsprites", "images", "photos", "colour-sprites"]
_CKPT = checkpoint("checkpoint.pt", "model.pt")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "entropy",
        help="entropy table of a data set: dSprites factors and H(X), or bounds for colour images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "dataset",
        choices=DATASETS,
        help="dsprites (procedural unless --npz), images PATH (a folder, image, .npy or .npz), photos "
        "(skimage's photographs cut into patches), colour-sprites (H(X) = log2 N known)",
    )
    p.add_argument("path", nargs="?", default=None, help="images: the folder, image file, .npy or .npz")
    p.add_argument(
        "--npz",
        type=readable_file,
        default=None,
        help="path of the real dsprites_ndarray_...npz (never downloaded)",
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        help="use N evenly spaced images instead of all (at most the set's size)",
    )
    p.add_argument(
        "--batch", type=positive_int, default=8192, help="images per rendered/read batch (default 8192)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    colour = p.add_argument_group("colour bounds (images, photos, colour-sprites)")
    colour.add_argument(
        "--size",
        type=positive_int,
        default=None,
        help="image side in px (images: as --preprocess's default; photos: 32; colour-sprites: 64, or 32/16)",
    )
    colour.add_argument(
        "--preprocess",
        default=None,
        help="images: celeba64, celeba32, resize or none (see docs/data-and-entropy.md)",
    )
    colour.add_argument(
        "--checkpoint",
        type=_CKPT,
        default=None,
        help="a colour model (elbits checkpoint.pt or folder): adds its -ELBO, I(X;Z) and bits-back size",
    )
    colour.add_argument("--no-codec", action="store_true", help="with --checkpoint: skip the bits-back codec")
    colour.add_argument(
        "--codec-limit",
        type=positive_int,
        default=None,
        help="with --checkpoint: run the bits-back codec on N evenly spaced images (default: all)",
    )
    colour.add_argument(
        "--no-baselines", action="store_true", help="skip PNG, WebP, JPEG-XL and the whole-set codecs"
    )
    colour.add_argument(
        "--elbo-samples",
        type=positive_int,
        default=4,
        help="posterior samples per image for the -ELBO (default %(default)s)",
    )
    colour.add_argument(
        "--surgery-points",
        type=positive_int,
        default=2048,
        help="images whose z are sampled for I(X;Z) (default %(default)s)",
    )
    out = colour.add_mutually_exclusive_group()
    out.add_argument("--markdown", action="store_true", help="print the table as markdown")
    out.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.dataset != "dsprites":
        return run_bounds(args)
    for flag, value in (("path", args.path), ("--size", args.size), ("--preprocess", args.preprocess)):
        if value is not None:
            raise InputError(f"{flag} is for images, photos and colour-sprites, not dsprites")
    if args.checkpoint is not None:
        raise InputError("--checkpoint is for images, photos and colour-sprites, not dsprites")
    return run_dsprites(args)


def run_dsprites(args: argparse.Namespace) -> int:
    n_all = ds.NUM_IMAGES
    if args.npz:
        data = ds.NpzDSprites(args.npz)
        n_all = len(data)
    if args.limit is not None and args.limit > n_all:
        raise InputError(
            f"--limit {args.limit} is more than the {n_all} images of the set; expected 1 to {n_all}"
        )
    idx = (
        np.arange(n_all)
        if not args.limit
        else np.unique(np.linspace(0, n_all - 1, args.limit).round().astype(np.int64))
    )
    read = data.images if args.npz else ds.render_index  # npz: positions are the archive's rows
    starts = tqdm(range(0, len(idx), args.batch), disable=args.quiet, unit="batch", desc="render+hash")
    t0 = time.perf_counter()
    emp, marg = E.image_entropies(read(idx[start : start + args.batch]) for start in starts)
    seconds = time.perf_counter() - t0
    fac = E.factor_entropy(ds.SIZES)
    rows = [
        ("factor entropy log(1*3*6*40*32*32)", fac),
        ("empirical H(X) (uniform over the images)", emp.entropy),
        ("log N (N images)", emp.log2_n),
        ("factor entropy - H(X) (duplicates)", Quantity(fac.nats - emp.entropy.nats, "nats", "image")),
        ("sum_i H(X_i) (pixel marginals)", marg.total),
        ("total correlation sum_i H(X_i) - H(X)", E.total_correlation(marg, emp)),
    ]
    src = f"real npz {args.npz}" if args.npz else "procedural dSprites"
    print(
        f"{src}: {emp.total} images, {emp.distinct} distinct ({emp.total - emp.distinct} duplicates), "
        f"{seconds:.1f} s"
    )
    print(f"{'quantity':<44}{'bits':>12}{'nats':>12}")
    for name, q in rows:
        print(f"{name:<44}{q.bits:>12.4f}{q.nats:>12.4f}")
    print(f"{'distinct images':<44}{emp.distinct:>12d}")
    if args.limit:
        print("(subset: the factor entropy row is the full grid's; compare H(X) with log N)")
    return 0


def colour_set(args: argparse.Namespace) -> tuple[Any, str, Optional[float]]:
    """``(images uint8 [N, C, H, W], description, exact H(p) in bits or None)`` for the dataset named."""
    if args.npz is not None:
        raise InputError("--npz is for dsprites; pass images PATH for a .npz of colour images")
    if args.dataset == "images":
        if args.path is None:
            raise InputError("images needs a PATH: a folder of PNG/JPEG files, an image, a .npy or a .npz")
        if not Path(args.path).exists():
            raise InputError(f"no such file or folder: {args.path}")
        kw = {"size": args.size, "preprocess": args.preprocess, "limit": args.limit}
        x = load_images(args.path, **{k: v for k, v in kw.items() if v is not None})
        return x, f"{args.path}", None
    if args.path is not None:
        raise InputError(f"{args.dataset} takes no PATH (got {args.path!r}); use images PATH for files")
    if args.preprocess is not None:
        raise InputError(f"--preprocess is for images PATH, not {args.dataset}")
    if args.dataset == "photos":
        size = args.size or 32
        x = photo_patches(size, limit=args.limit)
        return x, f"photos ({size}x{size} patches)", None
    size = args.size or 64
    if size not in (16, 32, 64):
        raise InputError(
            f"colour-sprites come at --size 64, 32 or 16 (a stride of the 64 px images), got {size}"
        )
    imgs = colour_sprites().images[:, :: 64 // size, :: 64 // size]
    # the factors are uniform and the image a function of them, so H(p) is the exact entropy of the whole
    # enumeration: log2 N at 64 and 32 px, less at 16 px where some small sprites render alike
    exact = empirical_entropy(imgs).entropy.bits
    if args.limit is not None:
        if args.limit > len(imgs):
            raise InputError(f"--limit {args.limit} is more than the {len(imgs)} colour sprites")
        imgs = imgs[np.unique(np.linspace(0, len(imgs) - 1, args.limit).round().astype(np.int64))]
    return np.ascontiguousarray(np.moveaxis(imgs, -1, 1)), f"colour-sprites ({size}x{size})", exact


def run_bounds(args: argparse.Namespace) -> int:
    x, source, exact = colour_set(args)
    model = likelihood = None
    if args.checkpoint is not None:
        model, info = load_model(args.checkpoint, "cpu")
        likelihood = likelihood_of(info)
    elif args.no_codec:
        raise InputError("--no-codec needs --checkpoint (the codec is the model's)")
    b = image_bounds(
        x,
        model=model,
        likelihood=likelihood,
        codec=not args.no_codec,
        codec_images=args.codec_limit,
        baselines=not args.no_baselines,
        exact_bits=exact,
        exact_name="exact H(p) (colour sprites, uniform factors)",
        elbo_samples=args.elbo_samples,
        surgery_points=args.surgery_points,
        source=source,
    )
    if args.json:
        print(json.dumps(b.to_dict()))
    else:
        print(b.to_markdown() if args.markdown else b.to_text())
    return 0
