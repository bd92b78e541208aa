"""``"discretized_gaussian"``: ``elbits::discretized_gaussian_elbo``, a Gaussian over the 256 bins
of 8-bit data fused with the Gaussian KL (csrc/cpu/discretized_gaussian.cpp), and its entry point
:func:`discretized_gaussian_terms`. The forward stores the gradient (:mod:`elbits.ops.stored_gradient`)."""

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
    "discretized_gaussian_rows", "cuda_discretized_gaussian_rows", "cuda_discretized_gaussian_chunks_per_row"
)


@torch.library.custom_op("elbits::discretized_gaussian_elbo", mutates_args=())
def discretized_gaussian_elbo(
    params: Tensor,
    target: Tensor,
    mu: Tensor,
    logvar: Tensor,
    n_mix: int,
    grad_prescale: float,
    compute_grad: bool,
    check_finite: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """params ``[B, 2C, P]`` (C means | C log-scales), target levels ``[B, C, P]`` (each sample
    contiguous); ``n_mix`` is unused (0). Returns (recon [B] nats, kl [B, Z] nats, grad_prescale *
    d recon / d params or empty, d kl / d logvar or empty)."""
    chans, pixels = target.shape[1], target.shape[2]
    return stored_gradient_forward(
        "discretized_gaussian_elbo",
        _KERNELS,
        params,
        params,
        target,
        mu,
        logvar,
        sizes=(params.shape[0], chans, pixels, n_mix),
        chunk_args=(chans, pixels),
        grad_prescale=grad_prescale,
        compute_grad=compute_grad,
        check_finite=check_finite,
        always=v.TARGET_FLAGS,
    )


@discretized_gaussian_elbo.register_fake
def _(params, target, mu, logvar, n_mix, grad_prescale, compute_grad, check_finite):
    return fake_stored_gradient_outputs(params, mu, logvar, compute_grad)


register_stored_gradient_autograd(
    discretized_gaussian_elbo, Derivatives(reference.discretized_gaussian_nll), grad_prescale_index=5
)


def discretized_gaussian_terms(
    params, target, mu, logvar, check_finite: bool = True, recon_grad_hint: Optional[float] = None
) -> ELBOTerms:
    """``"discretized_gaussian"``: params ``[B, 2C, *spatial]`` = C means | C log-scales (data
    scaled to [-1, 1]); target ``[B, C, *spatial]`` uint8/int64 levels or float in [-1, 1]."""
    params, target, mu, logvar, batch, _ = v.check_inputs("params", params, target, mu, logvar)
    levels, chans = v.image_levels("params", params, target, "discretized_gaussian")
    if params.shape[1] != 2 * chans:
        raise ValueError(
            f"params must have 2*C = {2 * chans} channels (C means then C log-scales) for a {chans}-channel "
            f"target, got {params.shape[1]}"
        )
    pixels = levels[0, 0].numel()
    p = v.sample_contiguous(params, (batch, 2 * chans, pixels))
    t = v.sample_contiguous(levels, (batch, chans, pixels))
    compute_grad, grad_prescale = grad_args(recon_grad_hint, batch, params, mu, logvar)
    recon, kl, _, _ = call_op(
        discretized_gaussian_elbo, p, t, mu, logvar, 0, grad_prescale, compute_grad, check_finite
    )
    return ELBOTerms(recon, kl, chans * pixels)
