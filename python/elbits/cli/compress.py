"""``elbits compress`` and ``elbits decompress``: lossless image files from a VAE by bits-back coding.

``elbits compress CHECKPOINT [IMAGES] -o FILE`` codes the images (a ``.npy`` of uint8 levels or the reference
PNG grid; without IMAGES, ``--limit`` procedural dSprites) and prints bits/image and bits/dim next to the
model's -ELBO (and, with ``--compare``, PNG, WebP, JPEG-XL and whole-set lzma/bz2/zstd).
``elbits decompress CHECKPOINT FILE -o OUT.npy`` gives the images back bit for bit. Decode with the same
model on the same kind of machine (torch version, CPU capability, thread count): see docs/codec.md.
"""

from __future__ import annotations

import argparse
import json
from typing import Union

from ._args import checkpoint, count_or_all, image_file, output_file, positive_int, readable_file, seed

_CKPT = checkpoint("checkpoint.pt", "model.pt")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compress",
        help="lossless bits-back file of images from a VAE checkpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "checkpoint", type=_CKPT, help="elbits checkpoint.pt or disentangling-vae model.pt (or folder)"
    )
    p.add_argument(
        "images",
        nargs="?",
        type=image_file,
        default=None,
        help=".npy of images or the 10x10 reference PNG grid (default: procedural dSprites)",
    )
    p.add_argument("-o", "--out", type=output_file, required=True, help="the compressed file to write")
    p.add_argument("--limit", type=positive_int, default=1000, help="procedural images (default %(default)s)")
    p.add_argument("--data-seed", type=seed, default=0, help="which procedural images (default %(default)s)")
    p.add_argument(
        "--latent-bits",
        type=latent_bits,
        default=12,
        help="P: 2^P equal-mass buckets per latent, 2..20; auto: a P per latent from the posteriors' "
        "scales (default %(default)s)",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=256, help="images per network call (default %(default)s)"
    )
    p.add_argument(
        "--elbo-samples",
        type=count_or_all,
        default=4,
        help="posterior samples for the -ELBO shown beside the rate; 0: skip it (default %(default)s)",
    )
    p.add_argument(
        "--compare", action="store_true", help="also code the images with PNG, WebP, JPEG-XL, lzma, bz2, zstd"
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--progress", action="store_true", help="a progress bar on stderr")
    p.set_defaults(func=run_compress)

    d = sub.add_parser(
        "decompress",
        help="the images of an elbits compress file, bit for bit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("checkpoint", type=_CKPT, help="the checkpoint the file was written with")
    d.add_argument("file", type=readable_file, help="a file written by elbits compress")
    d.add_argument(
        "-o", "--out", type=output_file, required=True, help="the .npy to write (uint8 [N, C, H, W])"
    )
    d.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    d.add_argument("--progress", action="store_true", help="a progress bar on stderr")
    d.set_defaults(func=run_decompress)


def latent_bits(text: str) -> Union[int, str]:
    """``auto`` or an integer precision P (checked by the codec, which names the range)."""
    return "auto" if text == "auto" else positive_int(text)


def run_compress(args: argparse.Namespace) -> int:
    from elbits.experiments.compress import compress, format_summary

    r = compress(
        args.checkpoint,
        args.images,
        args.out,
        limit=args.limit,
        data_seed=args.data_seed,
        overwrite=args.overwrite,
        compare=args.compare,
        elbo_samples=args.elbo_samples,
        progress=args.progress,
        latent_bits=args.latent_bits,
        batch=args.batch_size,
    )
    print(json.dumps(r) if args.json else format_summary(r))
    return 0


def run_decompress(args: argparse.Namespace) -> int:
    from elbits.experiments.compress import decompress

    r = decompress(args.checkpoint, args.file, args.out, overwrite=args.overwrite, progress=args.progress)
    print(f"elbits decompress: {r['images']} images {r['shape']} -> {r['out']}")
    return 0
