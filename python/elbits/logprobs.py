"""Per-subpixel log-probabilities of every level under a decoder's output, for entropy coding.

The NLL that training minimises is a sum over subpixels of ``-log P(level)``; an entropy coder needs the
whole table ``log P(l)`` for every level ``l`` of every subpixel. :func:`likelihood_logprobs` computes
that table with the same formulas as :mod:`elbits.reference` (which the fused kernels are tested against),
in float64, so the bits a codec spends are the NLL in bits that training optimised, up to the coder's
quantisation of the probabilities.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from . import reference as ref
from .errors import InputError

#: the likelihoods whose NLL is a code length (a probability mass over discrete levels)
DISCRETE = ("bernoulli", "categorical256", "logistic_mixture", "discretized_gaussian")
_DENSITIES = ("continuous_bernoulli", "gaussian", "laplace")
_LEVELS = torch.arange(256, dtype=torch.int64)


def discrete_likelihood(likelihood: str) -> str:
    """``likelihood`` with ``_inplace`` dropped, checked to be a probability mass over levels: a density
    (continuous Bernoulli, Gaussian, Laplace) raises :class:`InputError` saying why it cannot be coded."""
    name = likelihood.removesuffix("_inplace") if isinstance(likelihood, str) else likelihood
    if name in _DENSITIES:
        raise InputError(
            f"likelihood {likelihood!r} is a density over real values, not a probability mass over levels: "
            "its NLL "
            "is no code length and cannot drive an entropy coder; use one of "
            + ", ".join(DISCRETE)
            + " (for 8-bit data, the discretized Gaussian is the code-length version of a Gaussian decoder)"
        )
    if name not in DISCRETE:
        raise InputError(f"likelihood must be one of {', '.join(DISCRETE)}, got {likelihood!r}")
    return name


def likelihood_logprobs(
    params: torch.Tensor, likelihood: str, context: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """log P of every level of every subpixel, nats, float64.

    - ``bernoulli``: ``params`` are logits ``[B, *shape]``; returns ``[B, *shape, 2]`` (levels 0 and 1).
    - ``categorical256``: logits ``[B, 256, *spatial]``; returns ``[B, *spatial, 256]``.
    - ``discretized_gaussian``: ``[B, 2C, *spatial]``; returns ``[B, C, *spatial, 256]``.
    - ``logistic_mixture``: ``[B, 10K, H, W]`` (3 channels) or ``[B, 3K, H, W]`` (1); returns
      ``[B, C, H, W, 256]``. With 3 channels the means of G and B depend on the levels of R (and G): pass
      those levels as ``context`` (``[B, C, H, W]`` int levels; channel ``c``'s table reads only channels
      before ``c``, so a decoder fills ``context`` channel by channel).

    ``exp`` of the last axis sums to 1 for every subpixel (the edge bins of levels 0 and 255 are open).
    ``logsumexp(...)`` at the true levels, summed over a sample, is minus that sample's ``recon`` of
    :func:`elbits.elbo_terms`.
    """
    name = discrete_likelihood(likelihood)
    if not isinstance(params, torch.Tensor) or not params.is_floating_point():
        raise InputError("params must be a floating-point tensor (the decoder's output)")
    p = params.detach().to(torch.float64)
    if name == "bernoulli":
        return torch.stack([F.logsigmoid(-p), F.logsigmoid(p)], dim=-1)
    if name == "categorical256":
        if p.dim() < 2 or p.shape[1] != 256:
            raise InputError(f"categorical256 logits must be [B, 256, *spatial], got {list(p.shape)}")
        return F.log_softmax(p, dim=1).movedim(1, -1)
    levels = _LEVELS.to(p.device)
    if name == "discretized_gaussian":
        if p.dim() < 2 or p.shape[1] % 2:
            raise InputError(f"discretized_gaussian params must be [B, 2C, *spatial], got {list(p.shape)}")
        c = p.shape[1] // 2
        return ref.discretized_gaussian_logp(levels, p[:, :c, ..., None], p[:, c:, ..., None])
    return _mixture_logprobs(p, context, levels)


def _mixture_logprobs(p: torch.Tensor, context: Optional[torch.Tensor], levels: torch.Tensor) -> torch.Tensor:
    if p.dim() != 4 or p.shape[1] % 10 and p.shape[1] % 3:
        raise InputError(
            f"logistic_mixture params must be [B, 10K, H, W] or [B, 3K, H, W], got {list(p.shape)}"
        )
    chans = 3 if p.shape[1] % 10 == 0 else 1
    _k, logit, means, log_scales, coeffs = ref._mixture_split(p, chans)
    if coeffs is not None:
        if context is None:
            raise InputError(
                "logistic_mixture with 3 channels needs context: the levels of the earlier channels"
            )
        x = ref.image_levels(context).to(p.dtype) / 127.5 - 1.0
        coupling = torch.tanh(coeffs)
        x0, x1 = x[:, 0].unsqueeze(1), x[:, 1].unsqueeze(1)
        means = torch.stack(
            [
                means[:, 0],
                means[:, 1] + coupling[:, 0] * x0,
                means[:, 2] + coupling[:, 1] * x0 + coupling[:, 2] * x1,
            ],
            dim=1,
        )
    # [B, C, K, H, W, 256]: every component's bin masses per channel
    lp = ref.discretized_logistic_logp(levels, means[..., None], torch.clamp(log_scales, min=-7.0)[..., None])
    # The mixture is over components of the joint, P(x) = sum_k pi_k prod_c P_k(x_c | x_<c): channel c's
    # conditional weighs component k by pi_k times what it gave the earlier channels' actual levels.
    weights = F.log_softmax(logit, dim=1)
    tables = []
    for c in range(chans):
        tables.append(torch.logsumexp(lp[:, c] + torch.log_softmax(weights, dim=1)[..., None], dim=1))
        if c + 1 < chans:
            assert context is not None
            seen = ref.image_levels(context)[:, c].unsqueeze(1).expand_as(lp[:, c, ..., 0])
            weights = weights + lp[:, c].gather(-1, seen.unsqueeze(-1)).squeeze(-1)
    return torch.stack(tables, dim=1)
