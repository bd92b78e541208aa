"""``elbits demo``: train the reference beta-VAE on procedural dSprites for a few CPU minutes, then hand the
run to :mod:`elbits.report` for report.md, summary.json and the plots; ``elbits demo colour``: the colour
VAE with the logistic mixture on scikit-image's photo patches, its -ELBO in bits/dim beside the lossless
codecs' bounds on the patches' entropy (:func:`run_colour_demo`)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..entropy.images import ImageBounds, image_bounds
from ..errors import InputError
from ..report import build_summary, terminal_table, write_report
from ..report.colour import colour_terminal_table, write_colour_report
from ..train import Head, TrainConfig, TrainResult, fetch, resolve_head, train
from ..train.data import LevelImages, colour_training_set
from ..train.decoders import split_output

# The demo's settings (measured: docs/main-job.md): 2,500 steps of 64 images from a 32,768-image subset,
# the rate steered to H(X) of the training set (TargetRate from beta = 1). A fixed beta = 1 collapses
# to R ~ 0 at this length, see the docs.
DEMO_DEFAULTS: dict[str, Any] = {
    "steps": 2500,
    "batch_size": 64,
    "lr": 1e-3,
    "train_size": 32768,
    "controller": "target-rate",
    "beta": 1.0,
    "controller_lr": 1e-2,
    "log_every": 50,
    "seed": 0,
}


# The colour demo's settings: the ELBO itself (fixed beta = 1: -ELBO is the code length compared with the
# codecs), all 2,296 photo patches at 32 px, the mixture of 5 logistics (docs/training.md: why K = 5); 2,500
# steps at lr 2e-3 fit in about four minutes on two idle cores (docs/main-job.md).
COLOUR_DEMO_DEFAULTS: dict[str, Any] = {
    "data": "photos",
    "size": 32,
    "likelihood": "logistic_mixture",
    "mixture_components": 5,
    "steps": 2500,
    "batch_size": 64,
    "lr": 2e-3,
    "z_dim": 32,
    "train_size": None,
    "controller": "fixed",
    "beta": 1.0,
    "log_every": 50,
    "seed": 0,
}

#: Images the colour demo's bits-back codec row is measured on (evenly spaced; the codec is slow on a CPU).
COLOUR_CODEC_IMAGES = 4


def demo_config(out_dir: Union[str, Path] = "elbits-report", **overrides: Any) -> TrainConfig:
    """The demo's :class:`~elbits.train.TrainConfig` (run files under ``out_dir/run``)."""
    kw = {**DEMO_DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    kw.setdefault("out_dir", str(Path(out_dir) / "run"))
    return TrainConfig(**kw)


def reconstruction_batch(
    model: Any, dataset: Any, n: int = 10, seed: int = 0, head: Optional[Head] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training images (fixed by ``seed``) and their reconstructions (the decoder's mean image, in
    [0, 1]) in eval mode, z = mean with ``encode``/``decode``; ``head``: the run's
    :class:`~elbits.train.Head` (default: Bernoulli logits)."""
    items = np.sort(np.random.default_rng(seed).choice(len(dataset), min(n, len(dataset)), replace=False))
    x = fetch(dataset, items)
    dev = next(model.parameters()).device
    if head is None:
        head = resolve_head(getattr(model, "likelihood", "bernoulli"), None, model, x.shape[1])
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            xd = x.to(dev)
            if callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None)):
                out = model.decode(model.encode(xd)[0])
            else:
                out = split_output(model(xd), xd)[0]
    finally:
        model.train(was)
    return x, head.mean_image(out).cpu()


def report_run(
    result: TrainResult,
    cfg: TrainConfig,
    out_dir: Union[str, Path],
    wall_s: Optional[float] = None,
    command: str = "",
    t0: Optional[float] = None,
) -> dict[str, Any]:
    """The report of a finished run under ``out_dir`` (:func:`elbits.report.write_report`, with this run's
    reconstructions); returns the summary. ``t0``: a ``time.perf_counter()`` start; when given, ``wall_s``
    is the time from it to after the plots."""
    s = build_summary(result, cfg, wall_s=wall_s, command=command)
    inputs, recon = reconstruction_batch(result.model, result.dataset, seed=cfg.seed, head=result.head)
    return write_report(s, out_dir, inputs, recon, t0=t0)


def run_demo(
    out_dir: Union[str, Path] = "elbits-report",
    command: str = "elbits demo",
    quiet: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Train with :data:`DEMO_DEFAULTS` (``overrides`` replace any :class:`~elbits.train.TrainConfig` field),
    write the report under ``out_dir`` and print its summary; returns the summary dict."""
    t0 = time.perf_counter()
    cfg = demo_config(out_dir, **overrides)
    result = train(cfg)
    if result.rank != 0:
        return {}
    s = report_run(result, cfg, out_dir, command=command, t0=t0)
    if not quiet:
        print(terminal_table(s, str(Path(out_dir) / "report.md")))
    return s


def colour_demo_config(out_dir: Union[str, Path] = "elbits-report", **overrides: Any) -> TrainConfig:
    """The colour demo's :class:`~elbits.train.TrainConfig` (run files under ``out_dir/run``)."""
    kw = {**COLOUR_DEMO_DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    kw.setdefault("out_dir", str(Path(out_dir) / "run"))
    return TrainConfig(**kw)


def sample_batch(model: Any, head: Head, n: int = 10, seed: int = 0) -> torch.Tensor:
    """``n`` images decoded from z ~ N(0, I) (seeded), the decoder's mean image in [0, 1]."""
    dev = next(model.parameters()).device
    z = torch.randn(n, int(model.z_dim), generator=torch.Generator().manual_seed(seed)).to(dev)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.decode(z)
    finally:
        model.train(was)
    return head.mean_image(out).cpu()


def colour_bounds(
    model: Any, dataset: LevelImages, likelihood: str, codec_images: Optional[int], seed: int = 0
) -> ImageBounds:
    """:func:`elbits.entropy.image_bounds` of the training images with the trained ``model``: the codecs,
    log2 N, the model's -ELBO and I(X;Z), and the bits-back codec on ``codec_images`` of them (``None``:
    all; 0: no codec row)."""
    levels = torch.from_numpy(dataset.rows(np.arange(len(dataset))))
    return image_bounds(
        levels,
        model=model,
        likelihood=likelihood,
        codec=codec_images != 0,
        codec_images=codec_images,
        elbo_samples=1,
        seed=seed,
        source=dataset.source,
    )


def _occupied(out: Path) -> bool:
    return out.exists() and (not out.is_dir() or any(out.iterdir()))


def _move_into(tmp: Path, out: Path) -> None:
    """The finished report in ``tmp`` becomes ``out``: one rename when ``out`` is new; into an existing
    ``out`` (--overwrite) file by file, the old run folder replaced."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
        return
    for item in sorted(tmp.iterdir()):
        dest = out / item.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(item, dest)
    tmp.rmdir()


def run_colour_demo(
    out_dir: Union[str, Path] = "elbits-report",
    command: str = "elbits demo colour",
    quiet: bool = False,
    overwrite: bool = False,
    codec_images: Optional[int] = COLOUR_CODEC_IMAGES,
    **overrides: Any,
) -> dict[str, Any]:
    """Train :class:`~elbits.models.ColourVAE` with :data:`COLOUR_DEMO_DEFAULTS` (``overrides`` replace any
    :class:`~elbits.train.TrainConfig` field) on the photo patches and write the report under ``out_dir``
    (:func:`elbits.report.colour.write_colour_report`: report.md with the bounds table, summary.json, the
    PNGs); prints its summary unless ``quiet``; returns the summary dict.

    An ``out_dir`` that holds anything is refused unless ``overwrite``. Everything is written into a
    sibling folder first and moved into ``out_dir`` only when complete, so a failed or interrupted run
    leaves ``out_dir`` as it was.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    if overrides.get("resume") is not None:
        raise InputError("the colour demo starts afresh each time: --resume is for elbits train")
    if _occupied(out) and not overwrite:
        raise InputError(
            f"{out} already holds files; give --overwrite to replace the report there, or another --out"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; expected a folder for the report")
    probe = colour_demo_config(out, **overrides)
    # The data first: scikit-image missing (or a bad setting) fails before any folder is made.
    dataset = colour_training_set(
        probe.data, size=probe.image_size, train_size=probe.train_size, data_seed=probe.data_seed
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        cfg = colour_demo_config(tmp, **{**overrides, "overwrite": False})
        result = train(cfg, dataset=dataset)
        if result.rank != 0:
            return {}
        s = build_summary(result, cfg, command=command)
        s["config"]["out_dir"] = str(out / "run")
        s["load_average"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        t_b = time.perf_counter()
        bounds = colour_bounds(result.model, dataset, cfg.likelihood, codec_images, seed=cfg.seed)
        s["bounds_s"] = time.perf_counter() - t_b
        inputs, recon = reconstruction_batch(result.model, dataset, seed=cfg.seed, head=result.head)
        assert result.head is not None  # train() resolves the head of every run
        samples = sample_batch(result.model, result.head, seed=cfg.seed)
        write_colour_report(s, bounds, tmp, inputs, recon, samples, t0=t0)
        _move_into(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print(colour_terminal_table(s, str(out / "report.md")))
    return s


__all__ = [
    "COLOUR_DEMO_DEFAULTS",
    "DEMO_DEFAULTS",
    "colour_bounds",
    "colour_demo_config",
    "demo_config",
    "reconstruction_batch",
    "report_run",
    "run_colour_demo",
    "run_demo",
    "sample_batch",
]
