"""``elbits evaluate``: rate, distortion, per-dimension KL, active units and the ELBO-surgery split of a
trained VAE, bits per image.

Loads a checkpoint (:func:`elbits.models.checkpoints.load_model`) and images: for a binary dSprites model
(:mod:`elbits.data.image_files`) the procedural dSprites, a seeded random subset or the whole grid, or a
``.npy`` / the reference PNG grid; for a colour model (a ColourVAE of ``elbits train --data ...``) 8-bit
images read as training reads them (:func:`elbits.train.data.colour_training_set`: a folder, image file
or uint8 array, the photo patches or the colour sprites; by default the checkpoint's own training set).
It measures them with the rate-distortion pass of training (:func:`elbits.train.rd_pass`, under the
likelihood of the checkpoint's training config), per image and per dimension (subpixel):

- R: the analytic KL(q(z|x) || N(0, I)), summed over latents, averaged over images.
- D: the likelihood's NLL of x given z, averaged over ``samples`` draws z ~ q(z|x) per image (the ELBO's
  distortion, so D + R is a code length and H - D <= R); ``distortion_mu_bits``: at z = mu, for comparison.
- I(X;Z) and KL(q(z) || p(z)) with x uniform over the evaluated images: :func:`elbits.analysis.elbo_surgery`.
- H(X): the exact entropy of the evaluated images (de-duplicated, :mod:`elbits.entropy`), <= log2 N, and the
  dSprites factor entropy (19.49 bits) the question is about (colour sprites: their factor grid's; other
  colour data: none).
- bits/dim: each figure over the C x H x W subpixels, under the meter's names (``nelbo_bits_per_dim``, ...).

:mod:`elbits.report.evaluation` renders the result (text, plot, CSV row).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .. import entropy as E
from ..analysis import Surgery, elbo_surgery
from ..data import dsprites as ds
from ..data.image_files import describe_procedural, load_image_file, procedural_set
from ..errors import InputError
from ..models.checkpoints import load_model
from ..train.data import LevelImages, colour_training_set
from ..train.decoders import Head, resolve_head
from ..train.rd_pass import rd_pass, sampled_z
from ..units import BITS_PER_NAT, NATS_PER_BIT
from .demo import reconstruction_batch

PathLike = Union[str, Path]


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else the CPU; any other name as it is."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def checkpoint_head(model: nn.Module, info: dict[str, Any], channels: int) -> Head:
    """The likelihood head a checkpoint was trained with (its config's likelihood and decoder output;
    disentangling-vae models: Bernoulli logits)."""
    cfg = info.get("config") or {}
    return resolve_head(
        str(cfg.get("likelihood", "bernoulli")),
        cfg.get("decoder_output"),
        model,
        channels,
        components=int(cfg.get("mixture_components", 5)),
        scale=cfg.get("scale"),
        discretize=bool(cfg.get("discretize", False)),
    )


class _TensorImages:
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def images(self, items: Any) -> torch.Tensor:
        return self.x[torch.as_tensor(np.asarray(items, dtype=np.int64))]


@dataclass
class Evaluation:
    """What :func:`evaluate_model` measured; ``to_dict()`` is the ``--json`` object (bits per image)."""

    source: str
    images: int
    samples: int
    scalars: dict[str, float]
    distortion_mu_bits: float
    surgery: Surgery
    entropy: dict[str, Any]
    seconds: float
    model: dict[str, Any] = field(default_factory=dict)
    distortion_images: int = 0
    posteriors: Optional[tuple[torch.Tensor, torch.Tensor]] = field(default=None, repr=False)
    #: A few evaluated images over their reconstructions (z = mu), ``[n, C, H, W]`` in [0, 1], for the plot.
    examples: Optional[tuple[torch.Tensor, torch.Tensor]] = field(default=None, repr=False)

    @property
    def rate_bits(self) -> float:
        return self.scalars["rate_bits"]

    @property
    def distortion_bits(self) -> float:
        return self.scalars["distortion_bits"]

    @property
    def kl_per_dim_bits(self) -> list[float]:
        return [self.scalars[f"kl_{i}_bits"] for i in range(int(self.scalars["z_dim"]))]

    def to_dict(self) -> dict[str, Any]:
        s, sg = self.scalars, self.surgery
        return {
            "source": self.source,
            "images": self.images,
            "distortion_samples": self.samples,
            "distortion_images": self.distortion_images or self.images,
            "rate_bits": s["rate_bits"],
            "distortion_bits": s["distortion_bits"],
            "distortion_mu_bits": self.distortion_mu_bits,
            "nelbo_bits": s["nelbo_bits"],
            "dims": int(s["dims"]),
            "rate_bits_per_dim": s["rate_bits_per_dim"],
            "distortion_bits_per_dim": s["distortion_bits_per_dim"],
            "nelbo_bits_per_dim": s["nelbo_bits_per_dim"],
            "distortion_std_bits": s["distortion_std_bits"],
            "kl_per_dim_bits": self.kl_per_dim_bits,
            "active_units": int(s["active_units"]),
            "active_threshold_bits": s["active_threshold_nats"] * BITS_PER_NAT,
            "mi_bits": sg.mi_bits,
            "mi_stderr_bits": sg.mi_stderr_bits,
            "marginal_kl_bits": sg.marginal_kl_bits,
            "marginal_kl_mc_bits": sg.marginal_kl_mc_bits,
            "mi_loo_bits": sg.mi_loo_bits,
            "marginal_kl_per_dim_bits": list(sg.marginal_kl_per_dim_bits),
            "log_n_bits": sg.log_n_bits,
            "mi_points": sg.points,
            "mi_samples_per_point": sg.samples_per_point,
            "mi_estimator": sg.estimator,
            **self.entropy,
            "bound_bits": s.get("bound_bits"),
            "bound_slack_bits": s.get("bound_slack_bits"),
            "rate_over_factor_entropy": (
                s["rate_bits"] / self.entropy["factor_bits"] if self.entropy.get("factor_bits") else None
            ),
            "seconds": round(self.seconds, 2),
            "model": self.model,
        }


def evaluate_model(
    model: nn.Module,
    images: Any,
    *,
    samples: int = 4,
    seed: int = 0,
    batch_size: int = 256,
    mi_points: Optional[int] = 2048,
    mi_samples: int = 4,
    device: Optional[torch.device] = None,
    source: str = "",
    keep_posteriors: bool = False,
    progress: bool = False,
    distortion_images: Optional[int] = None,
    head: Optional[Head] = None,
    levels: int = 2,
    factor_bits: Optional[float] = None,
) -> Evaluation:
    """Evaluate ``model`` (``encode``/``decode``) on ``images`` with :func:`elbits.train.rd_pass`.

    ``images``: a ``[N, 1, 64, 64]`` / ``[N, 64, 64]`` tensor in {0, 1}, or a dataset with an
    ``images(items)`` batch read (dSprites; 8-bit :class:`~elbits.train.data.LevelImages` with
    ``levels=256``, read as level / 255). ``levels``: 2 for binary images, 256 for 8-bit ones (H(X) and the
    pixel marginals are counted on them); ``factor_bits``: the data's factor entropy (default: dSprites'
    for binary images, none for 8-bit ones). ``head``: the likelihood and decoder output (default: the
    model's declared ``decoder_output`` of a Bernoulli likelihood, e.g. the ``"probs"`` of
    :mod:`elbits.models`' adapters; a BurgessVAE's logits). D averages ``samples`` posterior draws per image
    (seeded by ``seed``, the pass's rule); the surgery samples z at ``mi_points`` images, ``mi_samples``
    each, against all N posteriors. ``distortion_images``: decode (D and D at z = mu) only a seeded random
    subset of this many images (an estimate of the same means); R, the KL per dimension and the surgery
    still use every image (the encoder pass is the cheap one).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not sampled_z(model):
        raise InputError(f"evaluate samples z itself: {type(model).__name__} needs encode and decode methods")
    t0 = time.perf_counter()
    data = images if hasattr(images, "images") else _TensorImages(torch.as_tensor(images))
    n = len(data)
    if n == 0:
        raise ValueError("no images to evaluate")
    if device is None:
        device = next(model.parameters()).device
    if levels not in (2, 256):
        raise ValueError(f"levels must be 2 (binary) or 256 (8-bit), got {levels}")
    counter, hist = E.ImageCounter(), E.PixelHistogram(levels=levels)
    bar = tqdm(total=n, unit="img", desc="evaluate", dynamic_ncols=True) if progress else None

    def count(x: torch.Tensor) -> None:
        x_u8 = x.to(torch.uint8) if levels == 2 else x.mul(255.0).round_().to(torch.uint8)
        counter.update(x_u8)
        hist.update(x_u8)
        if bar is not None:
            bar.update(len(x))

    try:
        rd = rd_pass(
            model,
            data,
            head=head,
            samples=samples,
            seed=seed,
            batch_size=batch_size,
            device=device,
            decode_images=distortion_images,
            at_mean=True,
            keep_posteriors=True,
            on_batch=count,
        )
    finally:
        if bar is not None:
            bar.close()
    assert rd.posteriors is not None and rd.distortion_mu_nats is not None
    mu_all, lv_all = rd.posteriors
    emp, marg = counter.result(), hist.result()
    h_bits = emp.entropy.bits
    scalars = _merge_scalars(rd.rate_meter.scalars(reduce=False), rd.meter.scalars(reduce=False), h_bits)
    surgery = elbo_surgery(mu_all, lv_all, points=mi_points, samples=mi_samples, seed=seed, device=device)
    ent = {
        "h_bits": h_bits,
        "distinct_images": int(emp.distinct),
        "factor_bits": factor_bits
        if factor_bits is not None or levels != 2
        else E.factor_entropy(ds.SIZES).bits,
        "marginal_sum_bits": marg.total.bits,
    }
    return Evaluation(
        source=source or f"{n} images",
        images=n,
        samples=samples,
        scalars=scalars,
        distortion_mu_bits=rd.distortion_mu_nats * BITS_PER_NAT,
        distortion_images=rd.decoded,
        surgery=surgery,
        entropy=ent,
        seconds=time.perf_counter() - t0,
        posteriors=(mu_all, lv_all) if keep_posteriors else None,
    )


def _merge_scalars(rate: dict[str, float], dist: dict[str, float], h_bits: float) -> dict[str, float]:
    """Rate figures of every image with the distortion figures of the decoded ones, and the budget H(X)."""
    out = dict(rate)
    for k in ("distortion_nats", "distortion_bits", "distortion_bits_per_dim", "distortion_std_bits"):
        out[k] = dist[k]
    out["distortion_samples_images"] = dist["samples"]
    r, d, dims = out["rate_bits"], out["distortion_bits"], out["dims"]
    out.update(
        nelbo_bits=r + d,
        nelbo_nats=(r + d) * NATS_PER_BIT,
        nelbo_bits_per_dim=(r + d) / dims,
        budget_bits=h_bits,
        budget_nats=h_bits * NATS_PER_BIT,
        bound_bits=h_bits - d,
        bound_nats=(h_bits - d) * NATS_PER_BIT,
        bound_slack_bits=r - (h_bits - d),
        bound_slack_nats=(r - (h_bits - d)) * NATS_PER_BIT,
        rate_over_budget=r / h_bits if h_bits > 0 else math.nan,
    )
    return out


def evaluate_checkpoint(
    checkpoint: PathLike,
    images: Optional[PathLike] = None,
    *,
    data: Optional[str] = None,
    size: Optional[int] = None,
    preprocess: Optional[str] = None,
    limit: Optional[int] = 16384,
    data_seed: int = 0,
    device: str = "auto",
    examples: int = 0,
    **kw: Any,
) -> Evaluation:
    """:func:`evaluate_model` of a checkpoint (see :func:`~elbits.models.checkpoints.load_model`), under the
    likelihood it was trained with.

    A binary dSprites model reads ``images`` (a file, see :func:`~elbits.data.image_files.load_image_file`)
    or, when ``None``, ``limit`` seeded procedural dSprites images (``None``: all). A colour model reads
    ``images`` (a folder, image file or uint8 array, cropped and resized by ``preprocess``), or ``data``
    (``photos``, ``colour-sprites``), or by default the set its run trained on, at ``size`` (default: the
    checkpoint's), at most ``limit`` of them drawn with ``data_seed``; images whose shape differs from the
    checkpoint's raise :class:`~elbits.errors.InputError`. ``examples``: keep that many images and their
    reconstructions for the plot.
    """
    dev = pick_device(device)
    model, info = load_model(checkpoint, dev)
    levels, factor_bits = 2, None
    dataset: Any
    if info.get("colour"):
        dataset = _colour_images(info, images, data, size, preprocess, limit, data_seed)
        source, channels, levels, factor_bits = (
            dataset.source,
            int(info["channels"]),
            256,
            dataset.factor_bits,
        )
    else:
        given = [f for f, v in (("--data", data), ("--size", size), ("--preprocess", preprocess)) if v]
        if given and data != "dsprites":
            raise InputError(
                f"{info['path']} is a binary dSprites model: {', '.join(given)} name colour images; give "
                "--images FILE (.npy or the reference PNG grid) or the procedural dSprites"
            )
        if images is not None:
            if Path(images).is_dir():
                raise InputError(
                    f"{images} is a folder; {info['path']} is a binary dSprites model, which reads a .npy of "
                    "0/1 images [N, 64, 64] or the reference PNG grid"
                )
            dataset = load_image_file(images)
            source = f"{len(dataset)} images from {Path(images).name}"
            channels = int(dataset.shape[1])
        else:
            dataset = procedural_set(limit, data_seed)
            source = describe_procedural(dataset, data_seed)
            channels = 1
    kw.setdefault("head", checkpoint_head(model, info, channels))
    ev = evaluate_model(
        model, dataset, device=dev, source=source, levels=levels, factor_bits=factor_bits, **kw
    )
    ev.model = info
    if examples > 0:
        # The demo's reconstructions: seeded images, the decoder's mean image at z = mu.
        shown = dataset if hasattr(dataset, "images") else _TensorImages(torch.as_tensor(dataset))
        ev.examples = reconstruction_batch(model, shown, n=examples, seed=data_seed, head=kw["head"])
    return ev


def _colour_images(
    info: dict[str, Any],
    images: Optional[PathLike],
    data: Optional[str],
    size: Optional[int],
    preprocess: Optional[str],
    limit: Optional[int],
    data_seed: int,
) -> LevelImages:
    """The 8-bit images a colour checkpoint is evaluated on, checked against the shape it reads."""
    cfg = info.get("config") or {}
    if images is not None and data is not None:
        raise InputError(f"--images {images} and --data {data} name two image sets: give one")
    if data == "dsprites":
        raise InputError(
            f"{info['path']} is a colour model ({cfg.get('data')}); dSprites images are binary: give "
            "--images PATH, --data photos or --data colour-sprites"
        )
    name = "images" if images is not None else data or str(cfg.get("data", "images"))
    folder = images if images is not None else cfg.get("images") if name == "images" else None
    if preprocess is not None and name != "images":
        raise InputError(f"--preprocess is for --images PATH (how its images are cropped), not {name}")
    if preprocess is None and name == "images" and images is None:
        preprocess = cfg.get("preprocess")  # the training set, read as it was trained on
    want = (int(info["channels"]), int(info["size"]), int(info["size"]))
    side = int(info["size"]) if size is None else int(size)
    dataset = colour_training_set(
        name,
        size=side,
        images=None if folder is None else str(folder),
        preprocess=preprocess,
        train_size=limit,
        data_seed=data_seed,
    )
    got = tuple(int(v) for v in dataset.levels.shape[1:])
    if got != want:
        raise InputError(
            f"{dataset.source}: images {list(got)}; the checkpoint {info['path']} reads {list(want)} "
            f"(trained on {cfg.get('data')} at {want[1]} px): give images of that shape"
            + (f" (drop --size {size})" if size is not None and size != want[1] else "")
        )
    return dataset


__all__ = ["Evaluation", "checkpoint_head", "evaluate_checkpoint", "evaluate_model", "pick_device"]
