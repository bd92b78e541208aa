"""``"categorical256"``: ``elbits::categorical256_elbo``, a softmax over 256 levels fused with the
Gaussian KL (csrc/cpu/categorical.cpp), and its entry points.

The forward keeps only each pixel's log-sum-exp; backward recomputes ``softmax - onehot`` from the
logits in one read + one write (``elbits::categorical256_grad``), optionally into the logits buffer
itself (``elbits::categorical256_grad_``), with the upstream gradient folded in: no stored
gradient, so no ``grad_prescale``.
"""

# No `from __future__ import annotations` here: torch 2.4's custom_op reads the signature's
# annotations as objects and cannot parse them as strings.

import torch

from .. import reference
from .._core import core
from .._dtypes import code, out_dtype
from ..terms import ELBOTerms
from . import validate as v
from .autograd import Derivatives, call_op, register_routes
from .buffers import gradient_buffer
from .fused import RowKernels, likelihood_and_kl
from .gaussian_kl import kl_backward
from .launch import cuda_stream, num_threads
from .stored_gradient import needs_grad

Tensor = torch.Tensor
LEVELS = 256
_KERNELS = RowKernels(
    "categorical256_forward", "cuda_categorical256_forward", "cuda_categorical256_chunks_per_row"
)


def _lse_dtype(logits_dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if logits_dtype == torch.float64 else torch.float32


@torch.library.custom_op("elbits::categorical256_elbo", mutates_args=())
def categorical256_elbo(
    logits: Tensor,
    target: Tensor,
    mu: Tensor,
    logvar: Tensor,
    compute_grad: bool,
    inplace_grad: bool,
    check_finite: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """logits ``[B, 256, P]`` (each sample contiguous), target ``[B, P]`` levels.

    Returns (recon [B], kl [B, Z], lse [B, 2, P], d kl / d logvar or empty); lse holds each
    pixel's log-sum-exp in two planes, the max logit and 1 / sum exp(logits - max), for the
    backward's softmax (their float lse would lose digits: csrc/include/elbits/categorical.h).
    """
    batch, _, pixels = logits.shape
    odt = out_dtype(logits.dtype, mu.dtype, logvar.dtype)
    dev = logits.device
    recon = torch.empty((batch,), dtype=odt, device=dev)
    lse = torch.empty((batch, 2, pixels), dtype=_lse_dtype(logits.dtype), device=dev)
    args = (
        logits.data_ptr(),
        code(logits.dtype),
        logits.stride(0),
        target.data_ptr(),
        code(target.dtype),
        target.stride(0),
        batch,
        pixels,
        lse.data_ptr(),
        recon.data_ptr(),
        odt == torch.float64,
    )
    kl, dlogvar = likelihood_and_kl(
        _KERNELS, args, (pixels,), logits, mu, logvar, odt, compute_grad, check_finite, v.TARGET_FLAGS
    )
    return recon, kl, lse, dlogvar


@categorical256_elbo.register_fake
def _(logits, target, mu, logvar, compute_grad, inplace_grad, check_finite):
    odt = out_dtype(logits.dtype, mu.dtype, logvar.dtype)
    batch, z = mu.shape
    recon = logits.new_empty((logits.shape[0],), dtype=odt)
    kl = logits.new_empty((batch, z), dtype=odt)
    lse = logits.new_empty((logits.shape[0], 2, logits.shape[2]), dtype=_lse_dtype(logits.dtype))
    dlogvar = logits.new_empty((batch, z) if compute_grad else (0,), dtype=odt)
    return recon, kl, lse, dlogvar


def _categorical_grad_call(logits, target, lse, scale, out):
    args = (
        logits.data_ptr(),
        code(logits.dtype),
        logits.stride(0),
        target.data_ptr(),
        code(target.dtype),
        target.stride(0),
        logits.shape[0],
        logits.shape[2],
        lse.data_ptr(),
        scale.data_ptr(),
        code(scale.dtype),
        scale.stride(0),
        out.data_ptr(),
    )
    if logits.is_cuda:
        with torch.cuda.device(logits.device):
            core.cuda_categorical256_backward(*args, cuda_stream(logits))
    else:
        core.categorical256_backward(*args, num_threads())


@torch.library.custom_op("elbits::categorical256_grad", mutates_args=())
def categorical256_grad(logits: Tensor, target: Tensor, lse: Tensor, scale: Tensor) -> Tensor:
    """``(softmax(logits) - onehot(target)) * scale[b]``, a new contiguous tensor of logits' dtype
    (on the CPU, the previous call's buffer when nothing references it any more: ops/buffers.py)."""
    out = gradient_buffer("categorical256", logits.shape, logits.dtype, logits.device)
    _categorical_grad_call(logits, target, lse, scale, out)
    return out


@categorical256_grad.register_fake
def _(logits, target, lse, scale):
    return logits.new_empty(logits.shape)


@torch.library.custom_op("elbits::categorical256_grad_", mutates_args=("logits",))
def categorical256_grad_(logits: Tensor, target: Tensor, lse: Tensor, scale: Tensor) -> None:
    """In place: overwrites ``logits`` (contiguous) with the gradient. Declared as a
    mutation, so autograd's version counter catches any later use of the old logits."""
    _categorical_grad_call(logits, target, lse, scale, logits)


@categorical256_grad_.register_fake
def _(logits, target, lse, scale):
    return None


def _setup_context(ctx, inputs, output):
    _logits, _target, _mu, _logvar, compute_grad, inplace_grad, _check = inputs
    _recon, _kl, lse, dlogvar = output
    ctx.stored = compute_grad  # d kl / d logvar was written (the logits gradient is recomputed anyway)
    ctx.inplace_grad = inplace_grad
    ctx.mark_non_differentiable(lse, dlogvar)
    ctx.set_materialize_grads(False)
    return lse, dlogvar


def _fast_backward(ctx, grad_recon, grad_kl):
    logits, target, mu, logvar, lse, dlogvar = ctx.saved_tensors
    grad_logits = None
    if grad_recon is not None and ctx.needs_input_grad[0]:
        if ctx.inplace_grad:  # grad_recon: any row stride (a sum's backward gives a stride-0 view)
            categorical256_grad_(logits, target, lse, grad_recon)
            grad_logits = logits
        else:
            grad_logits = categorical256_grad(logits, target, lse, grad_recon)
    grad_mu, grad_logvar = kl_backward(grad_kl, mu, dlogvar, logvar.dtype, traced_from=logvar)
    return grad_logits, None, grad_mu, grad_logvar, None, None, None


# Outside a first-order backward, the logits gradient comes from torch's cross-entropy, out of
# place (inplace_grad cannot apply: the logits are still needed by the graph being built).
register_routes(
    categorical256_elbo, _setup_context, _fast_backward, Derivatives(reference.categorical256_nll)
)


def categorical256_terms(
    logits, target, mu, logvar, check_finite: bool = True, inplace_grad: bool = False, recon_grad_hint=None
) -> ELBOTerms:
    """``"categorical256"``: logits ``[B, 256, *spatial]``, target levels ``[B, *spatial]`` (uint8/int64).

    ``inplace_grad=True`` makes backward write d recon / d logits into the logits
    tensor itself and return it as the gradient (no gradient allocation): the
    logits values are gone after backward. The op declares the mutation, so autograd
    raises if anything else saved the logits for its own backward; under
    torch.compile the mutation is functionalised (a copy), so it only saves memory eagerly.
    ``recon_grad_hint`` is accepted and unused: backward computes this gradient from the
    logits, with the upstream gradient folded in, in its single pass.
    """
    logits, target, mu, logvar, batch, _ = v.check_inputs(
        "logits", logits, target, mu, logvar, v.LEVEL_TARGETS
    )
    if logits.dim() < 3 or logits.shape[1] != LEVELS:
        raise ValueError(
            "logits must be [B, 256, *spatial] (256 levels in dimension 1, as F.cross_entropy), got "
            f"{tuple(logits.shape)}"
        )
    spatial = tuple(logits.shape[2:])
    if tuple(target.shape) != (batch, *spatial):
        raise ValueError(
            f"target must be [B, *spatial] = {(batch, *spatial)} for logits {tuple(logits.shape)}, got "
            f"{tuple(target.shape)}"
        )
    pixels = 1
    for s in spatial:
        pixels *= s
    x = v.sample_contiguous(logits, (batch, LEVELS, pixels))
    if inplace_grad and not x.is_contiguous():
        x = x.contiguous()
    t = v.sample_contiguous(target, (batch, pixels))
    recon, kl, _, _ = call_op(
        categorical256_elbo, x, t, mu, logvar, needs_grad(logits, mu, logvar), inplace_grad, check_finite
    )
    return ELBOTerms(recon, kl, pixels)


def categorical256_inplace_terms(
    logits, target, mu, logvar, check_finite: bool = True, recon_grad_hint=None
) -> ELBOTerms:
    """``"categorical256_inplace"``: :func:`categorical256_terms` with ``inplace_grad=True``."""
    return categorical256_terms(logits, target, mu, logvar, check_finite, inplace_grad=True)
