"""The Gaussian KL half of every fused op (csrc/cpu/gaussian_kl.cpp): forward and backward."""

from typing import Optional

import torch

from .._core import core
from .._dtypes import code
from .device_flags import flags_for
from .launch import cuda_stream


def gaussian_kl_into(
    mu: torch.Tensor, logvar: torch.Tensor, out_dtype: torch.dtype, with_grad: bool, check_finite: bool = True
):
    """KL per latent dimension ``[B, Z]`` (nats), d KL / d logvar if asked, and the CPU's input
    flags (on CUDA the flags go to the device word of :mod:`elbits.ops.device_flags`, only with
    ``check_finite``: ``{}`` here)."""
    batch, z = mu.shape
    kl = torch.empty((batch, z), dtype=out_dtype, device=mu.device)
    dlogvar = torch.empty((batch, z) if with_grad else (0,), dtype=out_dtype, device=mu.device)
    args = (
        mu.data_ptr(),
        code(mu.dtype),
        mu.stride(0),
        mu.stride(1),
        logvar.data_ptr(),
        code(logvar.dtype),
        logvar.stride(0),
        logvar.stride(1),
        batch,
        z,
        kl.data_ptr(),
        dlogvar.data_ptr() if with_grad else 0,
        out_dtype == torch.float64,
    )
    if mu.is_cuda:
        core.cuda_gaussian_kl_rows(*args, flags_for(mu.device).data_ptr(), check_finite, cuda_stream(mu))
        return kl, dlogvar, {}
    return kl, dlogvar, core.gaussian_kl_rows(*args)


def kl_backward(grad_kl, mu, dlogvar, logvar_dtype: torch.dtype, traced_from: Optional[torch.Tensor] = None):
    """Gradients of the KL w.r.t. mu (= mu) and logvar (= dlogvar), scaled by grad_kl, in the
    dtypes of mu and logvar. Traced (torch.compile), d KL / d logvar is taken from logvar itself
    (``traced_from``) rather than the stored dlogvar, for the reason
    :func:`elbits.ops.scale_rows.scale_rows` keeps its anchor."""
    if grad_kl is None:
        return None, None
    grad_mu = (grad_kl * mu.to(grad_kl.dtype)).to(mu.dtype)
    if (
        traced_from is not None
        and type(traced_from) is not torch.Tensor
        and type(traced_from) is not torch.nn.Parameter
    ):
        dlogvar = 0.5 * torch.expm1(traced_from.to(grad_kl.dtype))
    grad_logvar = (grad_kl * dlogvar).to(logvar_dtype)
    return grad_mu, grad_logvar
