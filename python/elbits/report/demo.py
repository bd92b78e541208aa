"""The demo: train the reference beta-VAE on procedural dSprites for a few CPU minutes, then write the
report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from . import markdown, plots
from .summary import build_summary, terminal_table

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


def demo_config(out_dir: Union[str, Path] = "elbits-report", **overrides: Any) -> Any:
    """The demo's :class:`~elbits.train.TrainConfig` (run files under ``out_dir/run``)."""
    from ..train import TrainConfig

    kw = {**DEMO_DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    kw.setdefault("out_dir", str(Path(out_dir) / "run"))
    return TrainConfig(**kw)


def reconstruction_batch(
    model: Any, dataset: Any, n: int = 10, seed: int = 0, head: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training images (fixed by ``seed``) and their reconstructions (the decoder's mean image, in
    [0, 1]) in eval mode, z = mean with ``encode``/``decode``; ``head``: the run's
    :class:`~elbits.train.Head` (default: Bernoulli logits)."""
    from ..train import fetch, resolve_head
    from ..train.decoders import split_output

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


def write_report(
    result: Any,
    cfg: Any,
    out_dir: Union[str, Path],
    wall_s: Optional[float] = None,
    command: str = "",
    t0: Optional[float] = None,
) -> dict[str, Any]:
    """report.md, summary.json and the four PNGs under ``out_dir``; returns the summary. ``t0``: a
    ``time.perf_counter()`` start; when given, ``wall_s`` is the time from it to after the plots."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = build_summary(result, cfg, wall_s=wall_s, command=command)
    plots.curves(s, out / "curves.png")
    plots.kl_bars(s, out / "kl_per_dim.png")
    x, p = reconstruction_batch(
        result.model, result.dataset, seed=cfg.seed, head=getattr(result, "head", None)
    )
    plots.reconstructions(x, p, out / "reconstructions.png")
    plots.rd_plane(s, out / "rd_plane.png")
    if t0 is not None:
        s["wall_s"] = time.perf_counter() - t0
    markdown.write_report(out / "report.md", s)
    (out / "summary.json").write_text(json.dumps(s, indent=1, default=str) + "\n")
    return s


def run_demo(
    out_dir: Union[str, Path] = "elbits-report",
    command: str = "elbits demo",
    quiet: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Train with :data:`DEMO_DEFAULTS` (``overrides`` replace any :class:`~elbits.train.TrainConfig` field),
    write the report under ``out_dir`` and print its summary; returns the summary dict."""
    from ..train import train

    t0 = time.perf_counter()
    cfg = demo_config(out_dir, **overrides)
    result = train(cfg)
    if result.rank != 0:
        return {}
    s = write_report(result, cfg, out_dir, command=command, t0=t0)
    if not quiet:
        print(terminal_table(s, str(Path(out_dir) / "report.md")))
    return s
