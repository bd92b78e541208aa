"""Likelihoods for 8-bit and colour images, fused with the Gaussian KL (CPU and CUDA).

- ``elbits::categorical256_elbo``: softmax over 256 levels; forward keeps only the
  per-pixel log-sum-exp, backward recomputes ``softmax - onehot`` from the logits
  in one read + one write (optionally into the logits buffer itself).
- ``elbits::logistic_mixture_elbo``, ``elbits::discretized_gaussian_elbo``,
  ``elbits::continuous_bernoulli_elbo``: per-subpixel parameters; forward writes
  the gradient beside the loss (as :mod:`elbits.ops.bernoulli`), backward scales it.

On CUDA the kernels run on torch's current stream and never sync with the host:
input problems are OR-ed into the device flag word of :mod:`elbits.ops.device_flags`
(read by :func:`elbits.check_device_errors`) instead of raising here.

The ``*_terms`` functions at the bottom validate inputs and are what
:data:`elbits.api.LIKELIHOODS` registers. Formulas, layouts and numerics:
README.md "Likelihoods".
"""

from collections.abc import Callable
from typing import Optional

import torch

from .. import reference
from .._core import core
from .._dtypes import FLOATS, code, out_dtype
from ..errors import InputError
from ..terms import ELBOTerms
from . import validate as v
from .buffers import gradient_buffer
from .common import (
    Derivatives,
    call_op,
    cuda_stream,
    fake_stored_gradient_outputs,
    gaussian_kl_into,
    grad_args,
    kl_backward,
    kl_then_raise,
    needs_grad,
    num_threads,
    register_routes,
    register_stored_gradient_autograd,
    stored_gradient,
)
from .device_flags import flags_for

Tensor = torch.Tensor
_EMPTY = (0,)
LEVELS = 256
_LEVEL_TARGETS = (torch.uint8, torch.int64)
# Targets out of range raise even with check_finite=False: they are not a NaN to pass on.
_TARGET_FLAGS = ("target_level_out_of_range", "target_out_of_range")


def _lse_dtype(logits_dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if logits_dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------- categorical-256


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
    if logits.is_cuda:
        # No host sync: input problems go to the device flag word (elbits.check_device_errors).
        with torch.cuda.device(dev):
            partial = torch.empty(
                batch * core.cuda_categorical256_chunks_per_row(pixels), dtype=torch.float64, device=dev
            )
            core.cuda_categorical256_forward(
                *args, partial.data_ptr(), flags_for(dev).data_ptr(), check_finite, cuda_stream(logits)
            )
            kl, dlogvar, _ = gaussian_kl_into(mu, logvar, odt, compute_grad, check_finite)
        return recon, kl, lse, dlogvar
    flags = core.categorical256_forward(*args, num_threads())
    kl, dlogvar = kl_then_raise(flags, mu, logvar, odt, compute_grad, check_finite, always=_TARGET_FLAGS)
    return recon, kl, lse, dlogvar


@categorical256_elbo.register_fake
def _(logits, target, mu, logvar, compute_grad, inplace_grad, check_finite):
    odt = out_dtype(logits.dtype, mu.dtype, logvar.dtype)
    batch, z = mu.shape
    recon = logits.new_empty((logits.shape[0],), dtype=odt)
    kl = logits.new_empty((batch, z), dtype=odt)
    lse = logits.new_empty((logits.shape[0], 2, logits.shape[2]), dtype=_lse_dtype(logits.dtype))
    dlogvar = logits.new_empty((batch, z) if compute_grad else _EMPTY, dtype=odt)
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


def _cat_setup_context(ctx, inputs, output):
    _logits, _target, _mu, _logvar, compute_grad, inplace_grad, _check = inputs
    _recon, _kl, lse, dlogvar = output
    ctx.stored = compute_grad  # d kl / d logvar was written (the logits gradient is recomputed anyway)
    ctx.inplace_grad = inplace_grad
    ctx.mark_non_differentiable(lse, dlogvar)
    ctx.set_materialize_grads(False)
    return lse, dlogvar


def _cat_backward(ctx, grad_recon, grad_kl):
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
    categorical256_elbo, _cat_setup_context, _cat_backward, Derivatives(reference.categorical256_nll)
)


# ------------------------------------------- per-subpixel likelihoods (stored gradient)


def _pixel_op(name: str, kernel: str, deriv: Derivatives):
    """A custom op (params, target, mu, logvar, n_mix, grad_scale, compute_grad, check_finite) ->
    (recon, kl, grad_scale * grad, dlogvar) over ``elbits._C.<kernel>`` with a stored gradient."""

    def impl(
        params: Tensor,
        target: Tensor,
        mu: Tensor,
        logvar: Tensor,
        n_mix: int,
        grad_scale: float,
        compute_grad: bool,
        check_finite: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        batch = params.shape[0]
        odt = out_dtype(params.dtype, mu.dtype, logvar.dtype)
        dev = params.device
        recon = torch.empty((batch,), dtype=odt, device=dev)
        grad = stored_gradient(name, params, compute_grad)
        gptr = grad.data_ptr() if compute_grad else 0
        head = (
            params.data_ptr(),
            code(params.dtype),
            params.stride(0),
            target.data_ptr(),
            code(target.dtype),
            target.stride(0),
        )
        if kernel == "continuous_bernoulli_rows":
            sizes: tuple[int, ...] = (batch, params.shape[1])
        else:
            sizes = (batch, target.shape[1], target.shape[2], n_mix)
        args = (*head, *sizes, gptr, grad_scale, recon.data_ptr(), odt == torch.float64)
        if params.is_cuda:
            # No host sync: input problems go to the device flag word (elbits.check_device_errors).
            with torch.cuda.device(dev):
                chunks = getattr(core, f"cuda_{kernel[:-5]}_chunks_per_row")(*sizes[1:3])
                partial = torch.empty(batch * chunks, dtype=torch.float64, device=dev)
                getattr(core, f"cuda_{kernel}")(
                    *args, partial.data_ptr(), flags_for(dev).data_ptr(), check_finite, cuda_stream(params)
                )
                kl, dlogvar, _ = gaussian_kl_into(mu, logvar, odt, compute_grad, check_finite)
            return recon, kl, grad, dlogvar
        flags = getattr(core, kernel)(*args, num_threads())
        kl, dlogvar = kl_then_raise(flags, mu, logvar, odt, compute_grad, check_finite, always=_TARGET_FLAGS)
        return recon, kl, grad, dlogvar

    op = torch.library.custom_op(f"elbits::{name}", impl, mutates_args=())

    def fake(params, target, mu, logvar, n_mix, grad_scale, compute_grad, check_finite):
        return fake_stored_gradient_outputs(params, mu, logvar, compute_grad)

    op.register_fake(fake)

    register_stored_gradient_autograd(op, deriv, prescale_index=5)
    return op


logistic_mixture_elbo = _pixel_op(
    "logistic_mixture_elbo", "logistic_mixture_rows", Derivatives(reference.logistic_mixture_nll)
)
discretized_gaussian_elbo = _pixel_op(
    "discretized_gaussian_elbo", "discretized_gaussian_rows", Derivatives(reference.discretized_gaussian_nll)
)
continuous_bernoulli_elbo = _pixel_op(
    "continuous_bernoulli_elbo",
    "continuous_bernoulli_rows",
    Derivatives(reference.continuous_bernoulli_nll, target_grad=True),
)


# ------------------------------------------------------------- validation + entry points


def _sample_contiguous(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``t`` viewed as ``shape`` (batch first) with each sample contiguous; copies only when needed."""
    flat = t.reshape(shape) if t[0].is_contiguous() else t.contiguous().reshape(shape)
    if not flat[0].is_contiguous():
        flat = flat.contiguous()
    return flat


def _levels(target: Tensor, what: str) -> Tensor:
    """Integer levels 0..255 from uint8/int64 levels, or from floats in [-1, 1] (x = level/127.5 - 1)."""
    if target.dtype in _LEVEL_TARGETS:
        return target
    if target.dtype in FLOATS:
        if target.requires_grad and torch.is_grad_enabled():
            # Rounding to a level is piecewise constant: no gradient to give, and a silent zero
            # would look like one.
            raise InputError(
                f"target requires grad, but {what} reads a float target as 8-bit levels (rounded, so it "
                "has no gradient): pass target.detach(), or use a likelihood of continuous targets"
            )
        t = target.detach().double()
        if t.is_cuda:
            # No host sync on CUDA: a value outside [-1, 1] (or NaN) becomes level -1, which the
            # kernel flags lazily as a level out of range (elbits.check_device_errors).
            inside = (t >= -1.0) & (t <= 1.0)
            return torch.where(inside, (t + 1.0) * 127.5, -1.0).round().to(torch.int64)
        if not bool(((t >= -1.0) & (t <= 1.0)).all()):
            raise ValueError(
                f"target has values outside [-1, 1] (or NaN); {what} reads float targets as level/127.5 - 1"
            )
        return ((t + 1.0) * 127.5).round().to(torch.int64)
    v.check_dtype("target", target, _LEVEL_TARGETS + FLOATS)
    raise AssertionError


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
        "logits", logits, target, mu, logvar, _LEVEL_TARGETS
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
    x = _sample_contiguous(logits, (batch, LEVELS, pixels))
    if inplace_grad and not x.is_contiguous():
        x = x.contiguous()
    t = _sample_contiguous(target, (batch, pixels))
    recon, kl, _, _ = call_op(
        categorical256_elbo, x, t, mu, logvar, needs_grad(logits, mu, logvar), inplace_grad, check_finite
    )
    return ELBOTerms(recon, kl, pixels)


def categorical256_inplace_terms(
    logits, target, mu, logvar, check_finite: bool = True, recon_grad_hint=None
) -> ELBOTerms:
    """``"categorical256_inplace"``: :func:`categorical256_terms` with ``inplace_grad=True``."""
    return categorical256_terms(logits, target, mu, logvar, check_finite, inplace_grad=True)


def _image_target(name: str, params: Tensor, target: Tensor, what: str) -> tuple[Tensor, int]:
    if target.dim() < 3:
        raise ValueError(f"target must be [B, C, *spatial] (C = 1 or 3), got shape {tuple(target.shape)}")
    if params.dim() != target.dim() or params.shape[2:] != target.shape[2:]:
        raise ValueError(
            f"{name} must be [B, channels, *spatial] with the spatial shape of target {tuple(target.shape)}, "
            f"got {tuple(params.shape)}"
        )
    return _levels(target, what), target.shape[1]


def logistic_mixture_terms(
    params, target, mu, logvar, check_finite: bool = True, recon_grad_hint: Optional[float] = None
) -> ELBOTerms:
    """``"logistic_mixture"``: PixelCNN++ params ``[B, 10K, H, W]`` (3 channels) or ``[B, 3K, H, W]``
    (1 channel); target ``[B, C, H, W]`` uint8/int64 levels or float in [-1, 1]."""
    params, target, mu, logvar, batch, _ = v.check_inputs("params", params, target, mu, logvar)
    levels, chans = _image_target("params", params, target, "logistic_mixture")
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
    p = _sample_contiguous(params, (batch, nch, pixels))
    t = _sample_contiguous(levels, (batch, chans, pixels))
    grad, scale = grad_args(recon_grad_hint, batch, params, mu, logvar)
    recon, kl, _, _ = call_op(logistic_mixture_elbo, p, t, mu, logvar, k, scale, grad, check_finite)
    return ELBOTerms(recon, kl, chans * pixels)


def discretized_gaussian_terms(
    params, target, mu, logvar, check_finite: bool = True, recon_grad_hint: Optional[float] = None
) -> ELBOTerms:
    """``"discretized_gaussian"``: params ``[B, 2C, *spatial]`` = C means | C log-scales (data
    scaled to [-1, 1]); target ``[B, C, *spatial]`` uint8/int64 levels or float in [-1, 1]."""
    params, target, mu, logvar, batch, _ = v.check_inputs("params", params, target, mu, logvar)
    levels, chans = _image_target("params", params, target, "discretized_gaussian")
    if params.shape[1] != 2 * chans:
        raise ValueError(
            f"params must have 2*C = {2 * chans} channels (C means then C log-scales) for a {chans}-channel "
            f"target, got {params.shape[1]}"
        )
    pixels = levels[0, 0].numel()
    p = _sample_contiguous(params, (batch, 2 * chans, pixels))
    t = _sample_contiguous(levels, (batch, chans, pixels))
    grad, scale = grad_args(recon_grad_hint, batch, params, mu, logvar)
    recon, kl, _, _ = call_op(discretized_gaussian_elbo, p, t, mu, logvar, 0, scale, grad, check_finite)
    return ELBOTerms(recon, kl, chans * pixels)


_CB_TARGETS = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8)


def continuous_bernoulli_terms(
    logits, target, mu, logvar, check_finite: bool = True, recon_grad_hint: Optional[float] = None
) -> ELBOTerms:
    """``"continuous_bernoulli"``: logits ``[B, ...]``, target of the same shape, float in
    [0, 1] or uint8 levels (read as level / 255)."""
    logits, target, mu, logvar, batch, _ = v.check_inputs(
        "logits", logits, target, mu, logvar, _CB_TARGETS, same_shape=True
    )
    x = v.rows_contiguous(logits)
    t = v.rows_contiguous(target)
    grad, scale = grad_args(recon_grad_hint, batch, logits, mu, logvar)
    recon, kl, _, _ = call_op(continuous_bernoulli_elbo, x, t, mu, logvar, 0, scale, grad, check_finite)
    return ELBOTerms(recon, kl, x.shape[1])


COLOUR_LIKELIHOODS: dict[str, Callable[..., ELBOTerms]] = {
    "categorical256": categorical256_terms,
    "categorical256_inplace": categorical256_inplace_terms,
    "logistic_mixture": logistic_mixture_terms,
    "discretized_gaussian": discretized_gaussian_terms,
    "continuous_bernoulli": continuous_bernoulli_terms,
}
