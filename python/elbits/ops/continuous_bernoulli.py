"""``"continuous_bernoulli"``: ``elbits::continuous_bernoulli_elbo``, the continuous Bernoulli of
targets in [0, 1] fused with the Gaussian KL (csrc/cpu/continuous_bernoulli.cpp), and its entry
point :func:`continuous_bernoulli_terms`. The forward stores the gradient
(:mod:`elbits.ops.stored_gradient`)."""

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

Tensor = torch.Tensor
_KERNELS = RowKernels(
    "continuous_bernoulli_rows", "cuda_continuous_bernoulli_rows", "cuda_continuous_bernoulli_chunks_per_row"
)
_TARGETS = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8)


@torch.library.custom_op("elbits::continuous_bernoulli_elbo", mutates_args=())
def continuous_bernoulli_elbo(
    params: Tensor,
    target: Tensor,
    mu: Tensor,
    logvar: Tensor,
    n_mix: int,
    grad_prescale: float,
    compute_grad: bool,
    check_finite: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """logits ``[B, n]`` and target ``[B, n]`` (rows contiguous); ``n_mix`` is unused (0). Returns
    (recon [B] nats, kl [B, Z] nats, grad_prescale * d recon / d params or empty, d kl / d logvar
    or empty)."""
    n = params.shape[1]
    return stored_gradient_forward(
        "continuous_bernoulli_elbo",
        _KERNELS,
        params,
        params,
        target,
        mu,
        logvar,
        sizes=(params.shape[0], n),
        chunk_args=(n,),
        grad_prescale=grad_prescale,
        compute_grad=compute_grad,
        check_finite=check_finite,
        always=v.TARGET_FLAGS,
    )


@continuous_bernoulli_elbo.register_fake
def _(params, target, mu, logvar, n_mix, grad_prescale, compute_grad, check_finite):
    return fake_stored_gradient_outputs(params, mu, logvar, compute_grad)


register_stored_gradient_autograd(
    continuous_bernoulli_elbo,
    Derivatives(reference.continuous_bernoulli_nll, target_grad=True),
    grad_prescale_index=5,
)


def continuous_bernoulli_terms(
    logits, target, mu, logvar, check_finite: bool = True, recon_grad_hint: Optional[float] = None
) -> ELBOTerms:
    """``"continuous_bernoulli"``: logits ``[B, ...]``, target of the same shape, float in
    [0, 1] or uint8 levels (read as level / 255)."""
    logits, target, mu, logvar, batch, _ = v.check_inputs(
        "logits", logits, target, mu, logvar, _TARGETS, same_shape=True
    )
    x = v.rows_contiguous(logits)
    t = v.rows_contiguous(target)
    compute_grad, grad_prescale = grad_args(recon_grad_hint, batch, logits, mu, logvar)
    recon, kl, _, _ = call_op(
        continuous_bernoulli_elbo, x, t, mu, logvar, 0, grad_prescale, compute_grad, check_finite
    )
    return ELBOTerms(recon, kl, x.shape[1])
