"""``elbits entropy dsprites``: what dSprites needs, in bits and nats per image.

The full procedural set (737,280 images) is rendered and hashed in one streaming pass; see
docs/data-and-entropy.md for its timing. ``--limit N`` takes N evenly spaced indices instead.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..errors import InputError
from ._args import positive_int, readable_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "entropy", help="entropy table of a data set (factor, empirical H(X), pixel marginals)"
    )
    p.add_argument("dataset", choices=["dsprites"], help="data set (dsprites: procedural unless --npz)")
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from elbits import entropy as E
    from elbits.data import dsprites as ds
    from elbits.units import Quantity

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
