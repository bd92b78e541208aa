"""The fused Gaussian KL kernel on its own, for the likelihoods computed with PyTorch ops.

The fused likelihood ops compute the KL in their own pass; these likelihoods call the
same kernel (``elbits._C.gaussian_kl_rows``) so that every likelihood's KL is one code path.
Eager calls go through an ``autograd.Function`` with a forward-mode rule (``jvp``) and a
vmap rule, whose backward is made of differentiable torch ops (so double backward and
``torch.func.hessian`` are exact); ``torch.compile`` traces the custom op instead, since
Dynamo cannot trace a custom ``jvp``.
"""

# No `from __future__ import annotations`: torch 2.4's custom_op cannot read string annotations.

import torch

from ..ops.gaussian_kl import gaussian_kl_into
from ..ops.validate import raise_flags

Tensor = torch.Tensor


@torch.library.custom_op("elbits::gaussian_kl", mutates_args=())
def gaussian_kl_op(mu: Tensor, logvar: Tensor, double_out: bool, check_finite: bool) -> Tensor:
    """``[B, Z]`` KL(N(mu, exp(logvar)) || N(0, 1)) per latent dimension, nats; float64 with
    ``double_out``, else float32. NaN/Inf in mu or logvar raise (CPU; on CUDA they are recorded
    for :func:`elbits.check_device_errors`) unless ``check_finite`` is False."""
    odt = torch.float64 if double_out else torch.float32
    if mu.is_cuda:
        with torch.cuda.device(mu.device):  # the launch goes to mu's device, not the current one
            return gaussian_kl_into(mu, logvar, odt, False, check_finite)[0]
    kl, _, flags = gaussian_kl_into(mu, logvar, odt, False, check_finite)
    if check_finite:
        raise_flags(flags)
    return kl


@gaussian_kl_op.register_fake
def _(mu, logvar, double_out, check_finite):
    return mu.new_empty(mu.shape, dtype=torch.float64 if double_out else torch.float32)


def _kl_vmap(info, in_dims, mu, logvar, double_out, check_finite):
    # Elementwise over [B, Z]: fold the vmapped dimension into the rows, one kernel call.
    size = info.batch_size
    mu, logvar = (
        t.movedim(d, 0) if d is not None else t.expand(size, *t.shape) for t, d in zip((mu, logvar), in_dims)
    )
    kl = gaussian_kl_op(
        mu.reshape(-1, mu.shape[-1]), logvar.reshape(-1, logvar.shape[-1]), double_out, check_finite
    )
    return kl.view(mu.shape), 0


if hasattr(gaussian_kl_op, "register_vmap"):  # torch >= 2.5; 2.4 runs torch's own fallback
    gaussian_kl_op.register_vmap(_kl_vmap)


def _grads(grad: Tensor, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
    # d KL / d mu = mu, d KL / d logvar = (exp(logvar) - 1) / 2, from the saved inputs
    # (not a stored derivative), so a second differentiation sees them.
    g_mu = grad * mu.to(grad.dtype)
    g_logvar = 0.5 * grad * torch.expm1(logvar.to(grad.dtype))
    return g_mu.to(mu.dtype), g_logvar.to(logvar.dtype)


def _setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[0], inputs[1])


def _backward(ctx, grad):
    mu, logvar = ctx.saved_tensors
    return (*_grads(grad, mu, logvar), None, None)


gaussian_kl_op.register_autograd(_backward, setup_context=_setup)


class _EagerKL(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(mu, logvar, double_out, check_finite):
        return gaussian_kl_op(mu, logvar, double_out, check_finite)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.save_for_forward(inputs[0], inputs[1])
        ctx.out_dtype = output.dtype

    @staticmethod
    def backward(ctx, grad):
        mu, logvar = ctx.saved_tensors
        return (*_grads(grad, mu, logvar), None, None)

    @staticmethod
    def jvp(ctx, t_mu, t_logvar, _d, _c):
        mu, logvar = ctx.saved_tensors
        odt = ctx.out_dtype
        out = torch.zeros(mu.shape, dtype=odt, device=mu.device)
        if t_mu is not None:
            out = out + mu.to(odt) * t_mu.to(odt)
        if t_logvar is not None:
            out = out + 0.5 * torch.expm1(logvar.to(odt)) * t_logvar.to(odt)
        return out


def gaussian_kl(mu: Tensor, logvar: Tensor, out_dtype: torch.dtype, check_finite: bool = True) -> Tensor:
    """``[B, Z]`` KL per latent dimension in nats (``out_dtype``: float32 or float64),
    differentiable w.r.t. mu and logvar in every autograd mode."""
    double_out = out_dtype == torch.float64
    if torch.compiler.is_compiling():
        return gaussian_kl_op(mu, logvar, double_out, check_finite)
    return _EagerKL.apply(mu, logvar, double_out, check_finite)
