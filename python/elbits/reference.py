"""Plain-PyTorch reference implementations of every term, for tests and benchmarks.

These are independent of the compiled core (they use torch's own functions) and
compute in float64 by default. They are not a fallback: elbits.elbo_terms always
runs the compiled kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .terms import ELBOTerms


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``[B]`` Bernoulli NLL summed over each sample's elements, nats (binary cross-entropy with logits)."""
    x = logits.to(dtype)
    t = target.to(dtype)
    return F.binary_cross_entropy_with_logits(x, t, reduction="none").flatten(1).sum(1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``[B, Z]`` KL(N(mu, exp(logvar)) || N(0, 1)) per latent dimension, nats."""
    m = mu.to(dtype)
    lv = logvar.to(dtype)
    # expm1: exp(lv) - 1 - lv cancels to noise near lv = 0, even in float64.
    return 0.5 * (m * m + (torch.expm1(lv) - lv))


def elbo_terms(
    logits: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    likelihood: str = "bernoulli",
    dtype: torch.dtype = torch.float64,
) -> ELBOTerms:
    """Reference :class:`ELBOTerms` in ``dtype`` (float64 by default)."""
    if likelihood != "bernoulli":
        raise ValueError(f"reference has no likelihood {likelihood!r}")
    recon = bernoulli_nll(logits, target, dtype)
    return ELBOTerms(recon, gaussian_kl(mu, logvar, dtype), logits[0].numel())
