"""``elbits demo``: train the reference beta-VAE on procedural dSprites for a few CPU minutes, then hand the
run to :mod:`elbits.report` for report.md, summary.json and the plots."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..report import build_summary, terminal_table, write_report
from ..train import Head, TrainConfig, TrainResult, fetch, resolve_head, train
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


__all__ = ["DEMO_DEFAULTS", "demo_config", "reconstruction_batch", "report_run", "run_demo"]
