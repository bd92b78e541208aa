"""``"logistic_mixture"``: ``elbits::logistic_mixture_elbo``, PixelCNN++'s discretized logistic
mixture fused with the Gaussian KL (csrc/cpu/logistic_mixture.cpp), and its entry point
:func:`logistic_mixture_terms`. The forward stores the gradient (:mod:`elbits.ops.stored_gradient`)."""

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
    "logistic_mixture_rows", "cuda_logistic_mixture_rows", "cuda_logistic_mixture_chunks_per_row"
)


@torch.library.custom_op("elbits::logistic_mixture_elbo", mutates_args=())
def logistic_mixture_elbo(
    params: Tensor,
    target: Tensor,
    mu: Tensor,
    logvar: Tensor,
    n_mix: int,
    grad_prescale: float,
    compute_grad: bool,
    check_finite: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """params ``[B, 10K or 3K, P]``, target levels ``[B, C, P]`` (each sample contiguous), ``n_mix`` = K.
    Returns (recon [B] nats, kl [B, Z] nats, grad_prescale * d recon / d params or empty,
    d kl / d logvar or empty)."""
    chans, pixels = target.shape[1], target.shape[2]
    return stored_gradient_forward(
        "logistic_mixture_elbo",
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


@logistic_mixture_elbo.register_fake
def _(params, target, mu, logvar, n_mix, grad_prescale, compute_grad, check_finite):
    return fake_stored_gradient_outputs(params, mu, logvar, compute_grad)


register_stored_gradient_autograd(
    logistic_mixture_elbo, Derivatives(reference.logistic_mixture_nll), grad_prescale_index=5
)


def logistic_mixture_terms(
    params, target, mu, logvar, check_finite: bool = True, recon_grad_hint: Optional[float] = None
) -> ELBOTerms:
    """``"logistic_mixture"``: PixelCNN++ params ``[B, 10K, H, W]`` (3 channels) or ``[B, 3K, H, W]``
    (1 channel); target ``[B, C, H, W]`` uint8/int64 levels or float in [-1, 1]."""
    params, target, mu, logvar, batch, _ = v.check_inputs("params", params, target, mu, logvar)
    levels, chans = v.image_levels("params", params, target, "logistic_mixture")
    if chans not in (1, 3):
        raise ValueError(
            f"logistic_mixture needs a 1- or 3-channel target, got {chans} channels (shape "
            f"{tuple(target.shape)})"
        )
    per = 10 if chans == 3 else 3
    nch = params.shape[1]
    if nch % per != 0:
        order = (
            "K logits | 3x(K means, K log-scales, K coeffs)"
            if chans == 3
            else "K logits | K means | K log-scales"
        )
        raise ValueError(
            f"params has {nch} channels, but a K-component logistic mixture over {chans} image channel(s) "
            f"needs {per}*K channels (PixelCNN++ order: {order})"
        )
    k = nch // per
    pixels = levels[0, 0].numel()
    p = v.sample_contiguous(params, (batch, nch, pixels))
    t = v.sample_contiguous(levels, (batch, chans, pixels))
    compute_grad, grad_prescale = grad_args(recon_grad_hint, batch, params, mu, logvar)
    recon, kl, _, _ = call_op(
        logistic_mixture_elbo, p, t, mu, logvar, k, grad_prescale, compute_grad, check_finite
    )
    return ELBOTerms(recon, kl, chans * pixels)
