"""The rate-distortion pass: a model over a set of images in eval mode, R and D under its likelihood head.

One pass serves training's end-of-run figures (:func:`elbits.train.train`, ``final.json``, the demo's
report) and ``elbits evaluate`` (:func:`elbits.experiments.evaluate.evaluate_model`) alike.

Seeding, the one rule: rank ``r`` of ``W`` draws its z noise from a CPU ``torch.Generator`` seeded with
``seed + 1_000_003 * r`` (:func:`noise_generator`; a single process is rank 0, so ``seed`` itself), batch by
batch in position order, ``samples`` draws of ``[B, Z]`` per batch; the random subset of images to decode
(``decode_images``) comes from ``numpy.random.default_rng(seed)``. A pass is therefore a function of the
model, the images, ``seed``, the batch size and the process layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from ..analysis import gaussian_kl
from ..meter import RateDistortionMeter
from ..terms import ELBOTerms
from ..units import NATS_PER_BIT
from .data import fetch
from .decoders import Head, resolve_head, split_output

#: Rank r's z noise comes from seed + RANK_STRIDE * r: streams of different ranks never share a seed.
RANK_STRIDE = 1_000_003


def noise_generator(seed: int, rank: int = 0) -> torch.Generator:
    """The CPU generator of rank ``rank``'s z noise in a pass seeded ``seed`` (the module's seeding rule)."""
    return torch.Generator().manual_seed(int(seed) + RANK_STRIDE * int(rank))


def _base(model: nn.Module) -> Any:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def sampled_z(model: nn.Module) -> bool:
    """Whether :func:`rd_pass` draws z from q(z|x) itself (the model has ``encode`` and ``decode``), so
    that D is the ELBO's distortion; else the model's eval-mode ``forward`` decides z (typically z = mu)."""
    base = _base(model)
    return callable(getattr(base, "encode", None)) and callable(getattr(base, "decode", None))


@dataclass
class RDPass:
    """What :func:`rd_pass` measured on this rank (the meters' scalars are global under a process group).

    - ``meter``: D of the decoded images (the mean over ``samples`` z draws, nats per image) with the KL of
      the head's terms, and the budget / bound when ``budget_bits`` was given: training's final figures.
    - ``rate_meter``: the analytic KL(q(z|x) || N(0, I)) in float64 of every evaluated image (D = 0 there):
      R and the KL per dimension of ``elbits evaluate``, which may decode only a subset.
    - ``images`` / ``decoded``: images this rank encoded / decoded.
    - ``distortion_mu_nats``: mean D at z = mu over the decoded images (``at_mean=True``), nats per image.
    - ``posteriors``: float64 CPU ``(mu, logvar)`` ``[N, Z]`` of every image (``keep_posteriors=True``).
    """

    meter: RateDistortionMeter
    rate_meter: RateDistortionMeter
    images: int
    decoded: int
    distortion_mu_nats: Optional[float] = None
    posteriors: Optional[tuple[torch.Tensor, torch.Tensor]] = field(default=None, repr=False)


@torch.no_grad()
def rd_pass(
    model: nn.Module,
    dataset: Any,
    *,
    head: Optional[Head] = None,
    samples: int = 1,
    seed: int = 0,
    budget_bits: Optional[float] = None,
    batch_size: int = 256,
    device: Optional[torch.device] = None,
    rank: int = 0,
    world: int = 1,
    limit: Optional[int] = None,
    decode_images: Optional[int] = None,
    at_mean: bool = False,
    keep_posteriors: bool = False,
    on_batch: Optional[Callable[[torch.Tensor], None]] = None,
) -> RDPass:
    """Rate and distortion of ``model`` over ``dataset`` (rank r takes positions r, r+W, ...), or over
    ``limit`` evenly spaced images when the set is larger (an estimate of the same means).

    The model runs in eval mode (BatchNorm's running statistics, no dropout), its mode restored after.
    With ``encode``/``decode`` D is the ELBO's: the reconstruction of z *sampled* from q(z|x), ``samples``
    draws per image (seeded: see the module docstring), so D + R is a code length and H - D <= R holds; any
    other model is called as it is, once (:func:`sampled_z`). ``head``: the likelihood and decoder output
    (default: the model's declared ``decoder_output`` of a Bernoulli likelihood; a BurgessVAE's logits);
    every batch's output is checked against it. ``decode_images``: decode only a seeded random subset of
    this many images (R, the KL per dimension and the posteriors still cover every image: the encoder pass
    is the cheap one). ``at_mean``: also D at z = mu. ``on_batch``: called with every batch of images as
    read (``[B, C, H, W]`` float, on the CPU), before the model sees it.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    base: Any = _base(model)
    split = sampled_z(base)
    if at_mean and not split:
        raise ValueError("D at z = mu needs a model with encode and decode")
    was_training = base.training
    if device is None:
        device = next(base.parameters()).device
    meter = RateDistortionMeter(budget=None if budget_bits is None else budget_bits * NATS_PER_BIT)
    rate_meter = RateDistortionMeter()
    g = noise_generator(seed, rank)
    n = len(dataset)
    every = (
        np.arange(n) if limit is None or n <= limit else np.linspace(0, n - 1, limit).round().astype(np.int64)
    )
    decode_mask: Optional[np.ndarray] = None
    if decode_images is not None and decode_images < len(every):
        decode_mask = np.zeros(len(every), bool)
        decode_mask[np.random.default_rng(seed).choice(len(every), int(decode_images), replace=False)] = True
        decode_mask = decode_mask[rank::world]
    positions = every[rank::world]
    decoded, mu_sum = 0, 0.0
    mus: list[torch.Tensor] = []
    lvs: list[torch.Tensor] = []
    base.eval()
    try:
        for start in range(0, len(positions), batch_size):
            x = fetch(dataset, positions[start : start + batch_size])
            if on_batch is not None:
                on_batch(x)
            x = x.to(device)
            if head is None:
                head = resolve_head(getattr(base, "likelihood", "bernoulli"), None, base, x.shape[1])
            if split:
                mu, logvar = base.encode(x)
            else:
                out, mu, logvar = split_output(base(x), x)
            dims = int(x[0].numel())
            no_recon = torch.zeros(len(x), dtype=torch.float64)
            rate_meter.update(ELBOTerms(no_recon, gaussian_kl(mu, logvar), dims))
            if keep_posteriors:
                mus.append(mu.double().cpu())
                lvs.append(logvar.double().cpu())
            if decode_mask is not None:
                rows = torch.from_numpy(np.nonzero(decode_mask[start : start + batch_size])[0]).to(device)
                x, mu, logvar = x[rows], mu[rows], logvar[rows]
                if not split:
                    out = out[rows]
            if not len(x):
                continue
            decoded += len(x)
            if at_mean:
                mu_sum += float(head.terms(base.decode(mu), x, mu, logvar).recon.double().sum())
            recon = torch.zeros(len(x), dtype=torch.float64, device=device)
            kl = None
            for _ in range(samples if split else 1):
                if split:
                    eps = torch.randn(mu.shape, generator=g, dtype=mu.dtype).to(device)
                    out = base.decode(mu + eps * torch.exp(0.5 * logvar))
                head.check(out, x, "the model's decoder output in evaluation")
                t = head.terms(out, x, mu, logvar)
                recon += t.recon.double()
                kl = t.kl if kl is None else kl
            assert kl is not None
            meter.update(ELBOTerms(recon / (samples if split else 1), kl, dims))
    finally:
        base.train(was_training)
    if keep_posteriors and not mus:
        raise ValueError("no images to evaluate")
    return RDPass(
        meter=meter,
        rate_meter=rate_meter,
        images=len(positions),
        decoded=decoded,
        distortion_mu_nats=mu_sum / decoded if at_mean and decoded else None,
        posteriors=(torch.cat(mus), torch.cat(lvs)) if keep_posteriors else None,
    )


__all__ = ["RANK_STRIDE", "RDPass", "noise_generator", "rd_pass", "sampled_z"]
