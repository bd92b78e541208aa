"""``"bernoulli"``: ``elbits::bernoulli_elbo``, Bernoulli reconstruction fused with the Gaussian KL
(csrc/cpu/bernoulli.cpp), and its entry point :func:`bernoulli_terms`."""

# No `from __future__ import annotations` here: torch 2.4's custom_op reads the signature's
# annotations as objects and cannot parse them as strings.

from typing import Optional

import torch

from .. import reference
from ..terms import ELBOTerms
from . import validate as v
from .autograd import Derivatives, call_op
from .fused import RowKernels
from .stored_gradient import (
    fake_stored_gradient_outputs,
    grad_args,
    register_stored_gradient_autograd,
    stored_gradient_forward,
)

_KERNELS = RowKernels("bernoulli_nll_rows", "cuda_bernoulli_nll_rows", "cuda_bernoulli_chunks_per_row")
_TARGETS = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.bool)


@torch.library.custom_op("elbits::bernoulli_elbo", mutates_args=())
def bernoulli_elbo(
    logits: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    grad_prescale: float,
    compute_grad: bool,
    check_finite: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (recon [B] nats, kl [B, Z] nats, grad_prescale * d recon/d logits or empty,
    d kl/d logvar or empty).

    The gradient of each sample's summed NLL w.r.t. its logits is written during
    the same pass that computes the loss, already multiplied by ``grad_prescale`` (the
    upstream gradient the caller expects each sample's recon to get, e.g. 1/B for a
    batch mean), so backward has nothing to do when the guess is right and only
    rescales otherwise (:mod:`elbits.ops.stored_gradient`).
    """
    x = v.rows_contiguous(logits)
    t = v.rows_contiguous(target)
    return stored_gradient_forward(
        "bernoulli",
        _KERNELS,
        logits,
        x,
        t,
        mu,
        logvar,
        sizes=(x.shape[0], x.shape[1]),
        chunk_args=(x.shape[1],),
        grad_prescale=grad_prescale,
        compute_grad=compute_grad,
        check_finite=check_finite,
    )


@bernoulli_elbo.register_fake
def _(logits, target, mu, logvar, grad_prescale, compute_grad, check_finite):
    return fake_stored_gradient_outputs(logits, mu, logvar, compute_grad)


register_stored_gradient_autograd(
    bernoulli_elbo, Derivatives(reference.bernoulli_nll, target_grad=True), grad_prescale_index=4
)


def bernoulli_terms(
    logits, target, mu, logvar, check_finite: bool = True, recon_grad_hint: Optional[float] = None
) -> ELBOTerms:
    """``"bernoulli"``: logits ``[B, ...]``, target of the same shape, float in [0, 1] (soft targets),
    uint8 {0, 1} or bool."""
    logits, target, mu, logvar, batch, dims = v.check_inputs(
        "logits", logits, target, mu, logvar, _TARGETS, same_shape=True
    )
    compute_grad, grad_prescale = grad_args(recon_grad_hint, batch, logits, mu, logvar)
    recon, kl, _, _ = call_op(
        bernoulli_elbo, logits, target, mu, logvar, grad_prescale, compute_grad, check_finite
    )
    return ELBOTerms(recon, kl, dims)
