"""``elbits compress`` / ``elbits decompress``: a checkpoint's bits-back codec on a set of images.

Loads what ``elbits evaluate`` loads (an elbits checkpoint or a disentangling-vae ``model.pt``) and the
images it reads (a ``.npy``, the reference PNG grid, or procedural dSprites), codes them with
:class:`elbits.codec.BitsBackCodec`, and writes the file atomically: a temporary file beside the target,
renamed over it only when complete, so a failure leaves nothing behind and an existing file is replaced
only when the caller said so.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..codec import BitsBackCodec
from ..codec.baselines import baselines
from ..data import images as colour_images
from ..data.image_files import load_image_file, procedural_set
from ..errors import InputError
from ..likelihoods.layouts import EIGHT_BIT
from ..models.checkpoints import load_model

PathLike = Union[str, Path]


@contextmanager
def atomic_output(path: PathLike, overwrite: bool) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed to it when the block succeeds and removed otherwise."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; pass --overwrite to replace it")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent or ".")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def likelihood_of(info: dict[str, Any]) -> str:
    """The likelihood a checkpoint's decoder was trained for (disentangling-vae models: Bernoulli)."""
    return str((info.get("config") or {}).get("likelihood", "bernoulli"))


def load_codec(checkpoint: PathLike, **settings: Any) -> tuple[BitsBackCodec, dict[str, Any]]:
    model, info = load_model(checkpoint, "cpu")
    return BitsBackCodec(model, likelihood_of(info), **settings), info


def read_images(
    images: Optional[PathLike], limit: int, data_seed: int, info: Optional[dict[str, Any]] = None
) -> torch.Tensor:
    """The images to code: for a checkpoint of an 8-bit likelihood, a folder, image file, ``.npy`` or ``.npz``
    of uint8 levels (:func:`elbits.data.images.load_images`, at the run's ``size`` and ``preprocess``); else a
    binary ``.npy`` or the reference PNG grid (:func:`elbits.data.image_files.load_image_file`), or ``limit``
    procedural dSprites."""
    config = (info or {}).get("config") or {}
    if likelihood_of(info or {}) in EIGHT_BIT:
        if images is None:
            raise InputError("a checkpoint of 8-bit images needs IMAGES (a folder, an image file or a .npy)")
        return colour_images.load_images(
            images, size=config.get("size"), preprocess=config.get("preprocess"), cache_dir=False
        )
    if images is not None:
        return load_image_file(images)
    data = procedural_set(limit, data_seed)
    return data.images(np.arange(len(data)))[:, None]


def compress(
    checkpoint: PathLike,
    images: Optional[PathLike],
    out: PathLike,
    *,
    limit: int = 1000,
    data_seed: int = 0,
    overwrite: bool = False,
    compare: bool = False,
    elbo_samples: int = 4,
    progress: bool = False,
    **settings: Any,
) -> dict[str, Any]:
    """Code the images into ``out``; returns the summary (bits/image and bits/dim, the model's −ELBO, and
    with ``compare`` the classical codecs on the same images)."""
    codec, info = load_codec(checkpoint, **settings)
    x = codec.check_images(read_images(images, limit, data_seed, info))
    with atomic_output(out, overwrite) as tmp, _bar(progress, len(x), "compress") as step:
        blob = codec.encode(x, elbo_samples=elbo_samples, progress=step)
        tmp.write_bytes(blob)
    assert codec.stats is not None
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "likelihood": codec.likelihood,
        "out": str(out),
        **codec.stats.summary(),
    }
    if compare:
        n, dims = len(x), int(x[0].numel())
        result["baselines"] = [
            {
                "codec": b.name,
                "bits_per_image": b.bits_per_image(n),
                "bits_per_dim": b.bits_per_image(n) / dims,
                "per_file": b.per_file,
            }
            for b in baselines(x.numpy(), binary=codec.likelihood == "bernoulli")
        ]
    return result


def decompress(
    checkpoint: PathLike, file: PathLike, out: PathLike, *, overwrite: bool = False, progress: bool = False
) -> dict[str, Any]:
    """Decode ``file`` with the checkpoint's model into ``out`` (a ``.npy`` of uint8 ``[N, C, H, W]``)."""
    from ..codec import container

    path = Path(file)
    blob = path.read_bytes()
    header, _ = container.unpack(blob, str(path))
    codec, _info = load_codec(checkpoint)  # the precisions are the file's
    with atomic_output(out, overwrite) as tmp, _bar(progress, header["images"], "decompress") as step:
        x = codec.decode(blob, progress=step)
        with open(tmp, "wb") as f:
            np.save(f, x.numpy(), allow_pickle=False)
    return {"file": str(path), "out": str(out), "images": int(x.shape[0]), "shape": list(x.shape[1:])}


@contextmanager
def _bar(enabled: bool, total: int, what: str):
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="img", desc=what) as bar:
        yield bar.update


def format_summary(r: dict[str, Any]) -> str:
    """The terminal table: the codec's net and whole-file rate next to the −ELBO and the baselines."""
    rows = [
        ("bits-back net (start-up excluded)", r["net_bits_per_image"], r["net_bits_per_dim"]),
        ("bits-back file (all bytes)", r["file_bits_per_image"], r["file_bits_per_dim"]),
    ]
    if "nelbo_bits_per_image" in r:
        rows.append(
            ("model -ELBO (D over posterior samples)", r["nelbo_bits_per_image"], r["nelbo_bits_per_dim"])
        )
    for b in r.get("baselines", []):
        rows.append(
            (b["codec"] + (" per file" if b["per_file"] else ""), b["bits_per_image"], b["bits_per_dim"])
        )
    width = max(len(name) for name, _, _ in rows)
    lines = [
        f"elbits compress: {int(r['images'])} images ({r['likelihood']}) -> {r['out']}, "
        f"{int(r['file_bytes'])} bytes ({int(r['header_bytes'])} header, {int(r['startup_bits'])} start-up "
        "bits), "
        f"{r['images_per_second']:.0f} images/s",
        f"{'':{width}}  bits/image    bits/dim",
    ]
    lines += [f"{name:{width}}  {bits:10.2f}  {per_dim:10.5f}" for name, bits, per_dim in rows]
    return "\n".join(lines)
