"""elbo_terms: the public entry point, dispatching on the likelihood."""

from __future__ import annotations

import math
import struct
from typing import Callable

import torch

from ._dtypes import FLOATS, out_dtype
from .ops import validate as v
from .ops.bernoulli import bernoulli_elbo
from .ops.colour import COLOUR_LIKELIHOODS
from .ops.common import call_op
from .terms import ELBOTerms

_BERNOULLI_TARGETS = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.bool)

Likelihood = Callable[..., ELBOTerms]


def _needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _recon_grad_prescale(hint: float | None, batch: int, logits_dtype: torch.dtype, out_dtype: torch.dtype) -> float:
    """The factor the forward multiplies the stored gradient by: the upstream gradient
    each sample's recon is expected to get, rounded as backward will see it (recon's
    dtype), so that backward can recognise it exactly and skip its pass."""
    if hint is None:
        # A batch mean is the common case. Half-precision gradients are stored unscaled
        # by default: a guess of 1/B that turns out wrong would cost them precision.
        if logits_dtype not in (torch.float32, torch.float64):
            return 1.0
        hint = 1.0 / batch
    else:
        hint = float(hint)
        if not math.isfinite(hint) or hint == 0.0:
            raise ValueError(
                f"recon_grad_hint must be a finite non-zero number (the expected d loss / d recon), got {hint}"
            )
    if out_dtype == torch.float32:
        hint = struct.unpack("f", struct.pack("f", hint))[0]
    return hint


def _bernoulli(logits, target, mu, logvar, check_finite: bool, recon_grad_hint: float | None = None) -> ELBOTerms:
    logits = v.check_tensor("logits", logits)
    target = v.check_tensor("target", target)
    v.check_dtype("logits", logits, FLOATS)
    v.check_dtype("target", target, _BERNOULLI_TARGETS)
    batch, dims = v.check_batch("logits", logits)
    if target.shape != logits.shape:
        raise ValueError(
            f"target must have the shape of logits {tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    mu, logvar = v.check_latents(mu, logvar, batch)
    v.check_same_device({"logits": logits, "target": target, "mu": mu, "logvar": logvar}, cuda=True)
    if target.dtype == torch.float64 and logits.dtype != torch.float64:
        # The vector loops read float64 targets only beside float64 logits; a
        # probability in [0, 1] loses nothing that matters as float32.
        target = target.float()
    needs_grad = _needs_grad(logits, mu, logvar)
    prescale = (
        _recon_grad_prescale(recon_grad_hint, batch, logits.dtype, out_dtype(logits.dtype, mu.dtype, logvar.dtype))
        if needs_grad
        else 1.0
    )
    recon, kl, _, _ = call_op(bernoulli_elbo, logits, target, mu, logvar, prescale, needs_grad, check_finite)
    return ELBOTerms(recon, kl, dims)


LIKELIHOODS: dict[str, Likelihood] = {"bernoulli": _bernoulli}
# 8-bit / colour images (python/elbits/ops/colour.py, README.md "Likelihoods").
LIKELIHOODS.update(COLOUR_LIKELIHOODS)


def elbo_terms(
    logits: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    likelihood: str = "bernoulli",
    *,
    check_finite: bool = True,
    recon_grad_hint: float | None = None,
) -> ELBOTerms:
    """Reconstruction NLL and Gaussian KL of a batch, fused, in nats per sample.

    - ``logits``: ``[B, ...]`` decoder output (float32/float16/bfloat16/float64).
    - ``target``: the data; for ``"bernoulli"`` the shape of ``logits``, float in
      [0, 1] (soft targets allowed), uint8 {0, 1} or bool.
    - ``mu``, ``logvar``: ``[B, Z]`` parameters of q(z|x) = N(mu, exp(logvar)).
    - ``check_finite``: raise ``ValueError`` naming the tensor when an input holds
      NaN/Inf or a target is out of range (found in the same pass, no extra cost).
    - ``recon_grad_hint``: a speed hint, never a change in results: the gradient
      d loss / d recon[b] backward is expected to bring (default ``1/B``, a batch
      mean, for float32/float64 logits). The Bernoulli forward stores its gradient
      already times this value, so a right guess leaves backward nothing to do
      and a wrong one costs one rescaling pass, as without a hint. Other
      likelihoods ignore it.

    Returns :class:`ELBOTerms` with ``recon`` ``[B]`` (nats, summed over each
    sample's dimensions) and ``kl`` ``[B, Z]`` (nats); float32 unless an input is
    float64. Differentiable w.r.t. ``logits``, ``mu`` and ``logvar``.
    """
    try:
        impl = LIKELIHOODS[likelihood]
    except KeyError:
        raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got {likelihood!r}") from None
    if likelihood == "bernoulli":
        return _bernoulli(logits, target, mu, logvar, check_finite, recon_grad_hint)
    return impl(logits, target, mu, logvar, check_finite)
