"""elbo_terms: the public entry point, dispatching on the likelihood."""

from __future__ import annotations

from typing import Callable

import torch

from .ops import validate as v
from .ops.bernoulli import bernoulli_elbo
from .ops.colour import COLOUR_LIKELIHOODS
from .ops.common import call_op, grad_args
from .terms import ELBOTerms

_BERNOULLI_TARGETS = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.bool)

Likelihood = Callable[..., ELBOTerms]


def _bernoulli(logits, target, mu, logvar, check_finite: bool, recon_grad_hint: float | None = None) -> ELBOTerms:
    logits, target, mu, logvar, batch, dims = v.check_inputs(
        "logits", logits, target, mu, logvar, _BERNOULLI_TARGETS, same_shape=True
    )
    compute_grad, prescale = grad_args(recon_grad_hint, batch, logits, mu, logvar)
    recon, kl, _, _ = call_op(bernoulli_elbo, logits, target, mu, logvar, prescale, compute_grad, check_finite)
    return ELBOTerms(recon, kl, dims)


LIKELIHOODS: dict[str, Likelihood] = {"bernoulli": _bernoulli}
# 8-bit / colour images (python/elbits/ops/colour.py, README.md "Likelihoods").
LIKELIHOODS.update(COLOUR_LIKELIHOODS)
# likelihoods whose backward can write the gradient into the parameters (inplace_grad=True)
_INPLACE = ("categorical256", "categorical256_inplace")


def resolve_likelihood(likelihood: str, inplace_grad: bool = False) -> Likelihood:
    """The implementation of ``likelihood`` (with its gradient written into the parameters when
    ``inplace_grad``); a ``ValueError`` naming the choices otherwise."""
    try:
        impl = LIKELIHOODS[likelihood]
    except KeyError:
        raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got {likelihood!r}") from None
    if inplace_grad:
        if likelihood not in _INPLACE:
            raise ValueError(f"inplace_grad=True is available for likelihood {sorted(_INPLACE)}, not {likelihood!r}")
        impl = LIKELIHOODS["categorical256_inplace"]
    return impl


def elbo_terms(
    logits: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    likelihood: str = "bernoulli",
    *,
    check_finite: bool = True,
    recon_grad_hint: float | None = None,
    inplace_grad: bool = False,
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
      mean, for float32/float64 parameters). Likelihoods whose forward stores the
      gradient (all but categorical-256; on CUDA only Bernoulli so far) store it
      already times this value, so a right guess leaves backward nothing to do
      and a wrong one costs one rescaling pass, as without a hint.
    - ``inplace_grad`` (``"categorical256"`` only): backward writes d loss / d logits
      into the logits tensor itself and hands that on as the gradient, so no
      logits-sized gradient is allocated; the logits' values are gone after
      backward (autograd raises if another op saved them for its own backward).

    Returns :class:`ELBOTerms` with ``recon`` ``[B]`` (nats, summed over each
    sample's dimensions) and ``kl`` ``[B, Z]`` (nats); float32 unless an input is
    float64. Differentiable w.r.t. ``logits``, ``mu`` and ``logvar``.
    """
    impl = resolve_likelihood(likelihood, inplace_grad)
    return impl(logits, target, mu, logvar, check_finite, recon_grad_hint=recon_grad_hint)
