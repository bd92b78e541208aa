"""elbits::bernoulli_elbo: fused Bernoulli reconstruction + Gaussian KL (CPU and CUDA)."""

# No `from __future__ import annotations` here: torch 2.4's custom_op reads the signature's
# annotations as objects and cannot parse them as strings.

import torch

from .. import reference
from .._core import core
from .._dtypes import code, out_dtype
from .common import (
    Derivatives,
    cuda_stream,
    fake_stored_gradient_outputs,
    gaussian_kl_into,
    kl_then_raise,
    num_threads,
    register_stored_gradient_autograd,
    stored_gradient,
)
from .device_flags import flags_for
from .validate import rows_contiguous


@torch.library.custom_op("elbits::bernoulli_elbo", mutates_args=())
def bernoulli_elbo(
    logits: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    grad_scale: float,
    compute_grad: bool,
    check_finite: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (recon [B] nats, kl [B, Z] nats, grad_scale * d recon/d logits or empty,
    d kl/d logvar or empty).

    The gradient of each sample's summed NLL w.r.t. its logits is written during
    the same pass that computes the loss, already multiplied by ``grad_scale`` (the
    upstream gradient the caller expects each sample's recon to get, e.g. 1/B for a
    batch mean), so backward has nothing to do when the guess is right and only
    rescales otherwise.
    """
    batch = logits.shape[0]
    odt = out_dtype(logits.dtype, mu.dtype, logvar.dtype)
    x = rows_contiguous(logits)
    t = rows_contiguous(target)
    n = x.shape[1]
    dev = logits.device
    recon = torch.empty((batch,), dtype=odt, device=dev)
    grad = stored_gradient("bernoulli", logits, compute_grad)
    args = (
        x.data_ptr(),
        code(x.dtype),
        x.stride(0),
        t.data_ptr(),
        code(t.dtype),
        t.stride(0),
        batch,
        n,
        grad.data_ptr() if compute_grad else 0,
        grad_scale,
        recon.data_ptr(),
        odt == torch.float64,
    )
    if logits.is_cuda:
        # No host sync: input problems go to the device flag word (elbits.check_device_errors).
        with torch.cuda.device(dev):
            partial = torch.empty(
                batch * core.cuda_bernoulli_chunks_per_row(n), dtype=torch.float64, device=dev
            )
            core.cuda_bernoulli_nll_rows(
                *args, partial.data_ptr(), flags_for(dev).data_ptr(), check_finite, cuda_stream(x)
            )
            kl, dlogvar, _ = gaussian_kl_into(mu, logvar, odt, compute_grad, check_finite)
        return recon, kl, grad, dlogvar
    flags = core.bernoulli_nll_rows(*args, num_threads())
    kl, dlogvar = kl_then_raise(flags, mu, logvar, odt, compute_grad, check_finite)
    return recon, kl, grad, dlogvar


@bernoulli_elbo.register_fake
def _(logits, target, mu, logvar, grad_scale, compute_grad, check_finite):
    return fake_stored_gradient_outputs(logits, mu, logvar, compute_grad)


register_stored_gradient_autograd(
    bernoulli_elbo, Derivatives(reference.bernoulli_nll, target_grad=True), prescale_index=4
)
