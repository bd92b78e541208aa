"""elbits::bernoulli_elbo: fused Bernoulli reconstruction + Gaussian KL (CPU)."""

from __future__ import annotations

import torch

from .._core import core
from .._dtypes import code, out_dtype
from .common import gaussian_kl_into, kl_backward, num_threads, scale_saved_gradient
from .validate import raise_flags, rows_contiguous

_EMPTY = (0,)


@torch.library.custom_op("elbits::bernoulli_elbo", mutates_args=())
def bernoulli_elbo(
    logits: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    compute_grad: bool,
    check_finite: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (recon [B] nats, kl [B, Z] nats, d recon/d logits or empty, d kl/d logvar or empty).

    The gradient of each sample's summed NLL w.r.t. its logits is written during
    the same pass that computes the loss, so backward only scales it.
    """
    batch = logits.shape[0]
    odt = out_dtype(logits.dtype, mu.dtype, logvar.dtype)
    x = rows_contiguous(logits)
    t = rows_contiguous(target)
    n = x.shape[1]
    recon = torch.empty((batch,), dtype=odt)
    grad = torch.empty(logits.shape if compute_grad else _EMPTY, dtype=logits.dtype)
    flags = core.bernoulli_nll_rows(
        x.data_ptr(), code(x.dtype), x.stride(0),
        t.data_ptr(), code(t.dtype), t.stride(0),
        batch, n, grad.data_ptr() if compute_grad else 0, recon.data_ptr(),
        odt == torch.float64, num_threads(),
    )
    kl, dlogvar, kl_flags = gaussian_kl_into(mu, logvar, odt, compute_grad)
    if check_finite:
        raise_flags({**flags, **kl_flags})
    return recon, kl, grad, dlogvar


@bernoulli_elbo.register_fake
def _(logits, target, mu, logvar, compute_grad, check_finite):
    odt = out_dtype(logits.dtype, mu.dtype, logvar.dtype)
    batch, z = mu.shape
    recon = logits.new_empty((logits.shape[0],), dtype=odt)
    kl = logits.new_empty((batch, z), dtype=odt)
    grad = logits.new_empty(logits.shape if compute_grad else _EMPTY)
    dlogvar = logits.new_empty((batch, z) if compute_grad else _EMPTY, dtype=odt)
    return recon, kl, grad, dlogvar


def _setup_context(ctx, inputs, output):
    logits, _target, mu, _logvar, compute_grad, _check = inputs
    _recon, _kl, grad, dlogvar = output
    ctx.compute_grad = compute_grad
    ctx.logits_dtype = logits.dtype
    ctx.logvar_dtype = _logvar.dtype
    ctx.save_for_backward(grad, mu, dlogvar)
    ctx.mark_non_differentiable(grad, dlogvar)
    # The gradient buffers are outputs only to be saved; materialising zero
    # gradients for them would cost a full pass over a logits-sized tensor.
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_recon, grad_kl, _g, _d):
    if not ctx.compute_grad:
        raise RuntimeError(
            "elbits.bernoulli_elbo was run without gradient support (grad disabled or logits not "
            "requiring grad when it was called); call it with grad enabled to differentiate it"
        )
    grad, mu, dlogvar = ctx.saved_tensors
    grad_logits = None
    if grad_recon is not None and ctx.needs_input_grad[0]:
        # Backward reads the gradient stored by forward once: no re-read of logits
        # or targets, no transcendental function.
        grad_logits = scale_saved_gradient(grad, grad_recon.contiguous())
    grad_mu, grad_logvar = kl_backward(grad_kl, mu, dlogvar)
    if grad_logvar is not None:
        grad_logvar = grad_logvar.to(ctx.logvar_dtype)
    return grad_logits, None, grad_mu, grad_logvar, None, None


bernoulli_elbo.register_autograd(_backward, setup_context=_setup_context)
