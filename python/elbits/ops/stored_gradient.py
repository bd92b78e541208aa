"""The stored-gradient protocol of the Bernoulli, logistic-mixture, discretized-Gaussian and
continuous-Bernoulli ops.

Their forward writes d recon / d params beside the loss, already multiplied by
``grad_prescale``: the upstream gradient d loss / d recon[b] backward is expected to bring
(the user's ``recon_grad_hint``, default 1/B for a batch mean). A first-order backward then only
rescales the rows whose upstream gradient differs (:mod:`elbits.ops.scale_rows`), and applies
the KL's closed form; every other differentiation mode goes through :mod:`elbits.ops.autograd`.
"""

import math
import struct
from typing import Optional

import torch

from .._dtypes import code, out_dtype
from .autograd import Derivatives, plain_eager, register_routes
from .buffers import gradient_buffer
from .fused import RowKernels, likelihood_and_kl
from .gaussian_kl import kl_backward
from .scale_rows import scale_rows, scale_rows_into


def needs_grad(*tensors: torch.Tensor) -> bool:
    """Whether an op on these tensors must support backward (grad mode on, an input requiring grad)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def grad_args(
    recon_grad_hint: Optional[float], batch: int, params: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[bool, float]:
    """``(compute_grad, grad_prescale)`` for a stored-gradient op: whether to write the gradient,
    and the factor to write it times (see :func:`_grad_prescale`)."""
    if not needs_grad(params, mu, logvar):
        return False, 1.0
    return True, _grad_prescale(recon_grad_hint, batch, params, mu, logvar)


_HINT_MIN, _HINT_MAX = 1e-20, 1e20


def _grad_prescale(
    recon_grad_hint: Optional[float], batch: int, params: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> float:
    """The factor the forward multiplies the stored gradient by: the upstream gradient
    each sample's recon is expected to get, rounded as backward will see it (recon's
    dtype), so that backward can recognise it exactly and skip its pass. The hint is only read in
    plain eager mode: under tracing it may be symbolic, and reading it would specialise it."""
    if not plain_eager(params, mu, logvar):
        # Traced code scales out of place in backward anyway: nothing to skip.
        return 1.0
    hint = None if recon_grad_hint is None else float(recon_grad_hint)
    if hint is not None:
        if not (math.isfinite(hint) and _HINT_MIN <= abs(hint) <= _HINT_MAX):
            raise ValueError(
                "recon_grad_hint must be a finite number with magnitude in [1e-20, 1e20] "
                f"(the expected d loss / d recon per sample), got {hint}"
            )
    # Half-precision gradients are stored unscaled: a factor like 1/B would push
    # small gradients into fp16's subnormals before backward multiplies them by
    # the upstream gradient (e.g. a GradScaler's loss scale).
    if params.dtype not in (torch.float32, torch.float64):
        return 1.0
    grad_prescale = 1.0 / batch if hint is None else hint  # a batch mean is the common case
    if out_dtype(params.dtype, mu.dtype, logvar.dtype) == torch.float32:
        grad_prescale = struct.unpack("f", struct.pack("f", grad_prescale))[0]
    return grad_prescale


def stored_gradient(slot: str, params: torch.Tensor, compute_grad: bool) -> torch.Tensor:
    """The buffer a stored-gradient op writes d recon / d params into (params' shape and
    dtype; reused between calls on the CPU, see :mod:`elbits.ops.buffers`), or an empty
    placeholder when no gradient is asked for."""
    if not compute_grad:
        return torch.empty((0,), dtype=params.dtype, device=params.device)
    return gradient_buffer(slot, params.shape, params.dtype, params.device)


def stored_gradient_forward(
    slot: str,
    kernels: RowKernels,
    params: torch.Tensor,
    x: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    sizes: tuple[int, ...],
    chunk_args: tuple[int, ...],
    grad_prescale: float,
    compute_grad: bool,
    check_finite: bool,
    always: tuple[str, ...] = (),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The body of a stored-gradient op: (recon [B] nats, kl [B, Z] nats, ``grad_prescale`` *
    d recon / d params or empty, d kl / d logvar or empty).

    ``params`` is the op's input (the gradient gets its shape), ``x`` and ``target`` the kernel's
    views of params and target (each row contiguous), ``sizes`` the kernel's size arguments after
    the target (batch first) and ``chunk_args`` those of its CUDA ``chunks_per_row``.
    """
    odt = out_dtype(params.dtype, mu.dtype, logvar.dtype)
    recon = torch.empty((params.shape[0],), dtype=odt, device=params.device)
    grad = stored_gradient(slot, params, compute_grad)
    args = (
        x.data_ptr(),
        code(x.dtype),
        x.stride(0),
        target.data_ptr(),
        code(target.dtype),
        target.stride(0),
        *sizes,
        grad.data_ptr() if compute_grad else 0,
        grad_prescale,
        recon.data_ptr(),
        odt == torch.float64,
    )
    kl, dlogvar = likelihood_and_kl(
        kernels, args, chunk_args, x, mu, logvar, odt, compute_grad, check_finite, always
    )
    return recon, kl, grad, dlogvar


def fake_stored_gradient_outputs(
    params: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, compute_grad: bool
):
    """Meta outputs of a stored-gradient op: recon [B], kl [B, Z], d recon/d params, d kl/d logvar."""
    odt = out_dtype(params.dtype, mu.dtype, logvar.dtype)
    batch, z = mu.shape
    recon = params.new_empty((params.shape[0],), dtype=odt)
    kl = params.new_empty((batch, z), dtype=odt)
    grad = params.new_empty(params.shape if compute_grad else (0,))
    dlogvar = params.new_empty((batch, z) if compute_grad else (0,), dtype=odt)
    return recon, kl, grad, dlogvar


_keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)


def scale_saved_gradient(
    grad: torch.Tensor, scale: torch.Tensor, grad_prescale: float = 1.0, anchor: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """The backward of a per-sample sum whose per-element gradient the forward stored
    (times ``grad_prescale``, the upstream gradient it expected).

    When this backward frees its graph (no ``retain_graph``), the stored buffer is
    dead after this call, so it is scaled in place and handed on: no new
    logits-sized allocation (which costs page faults on every step), and no pass
    at all over rows whose upstream gradient is the expected one. This runs in
    eager mode only, so it calls the core directly rather than through the
    custom op's dispatcher (~25 us a call). When the graph is kept
    (retain_graph, autograd.grad per term, gradcheck), under torch.compile, or on
    a torch without the query, a new tensor is returned.
    """
    reuse = (
        _keep_graph is not None
        and type(grad) is torch.Tensor  # not a fake/functional tensor being traced (compile, AOT)
        and type(scale) is torch.Tensor
        and not torch.compiler.is_compiling()
        and not _keep_graph()
    )
    if reuse:
        scale_rows_into(grad, grad, scale, grad_prescale)
        return grad
    return scale_rows(grad, scale, grad_prescale, anchor)


def register_stored_gradient_autograd(op, deriv: Derivatives, grad_prescale_index: int) -> None:
    """Autograd for ops whose forward returns ``(recon, kl, d recon/d params, d kl/d logvar)``.

    The op's inputs are ``(params, target, mu, logvar, *settings, compute_grad, check_finite)``,
    with the ``grad_prescale`` the forward multiplied the stored gradient by at
    ``grad_prescale_index``; a first-order backward only rescales it per sample
    (:func:`scale_saved_gradient`) and applies the KL's closed form. Every other mode
    differentiates ``deriv`` (:mod:`elbits.ops.autograd`).
    """

    def setup_context(ctx, inputs, output):
        _recon, _kl, grad, dlogvar = output
        ctx.grad_prescale = float(inputs[grad_prescale_index])
        ctx.stored = inputs[-2]  # compute_grad: the forward wrote the gradient
        ctx.mark_non_differentiable(grad, dlogvar)
        # The gradient buffers are outputs only to be saved; materialising zero
        # gradients for them would cost a full pass over a params-sized tensor.
        ctx.set_materialize_grads(False)
        return grad, dlogvar

    def fast_backward(ctx, grad_recon, grad_kl):
        params, target, mu, logvar, grad, dlogvar = ctx.saved_tensors
        grad_params = grad_target = None
        if grad_recon is not None and ctx.needs_input_grad[0]:
            # Reads the gradient stored by forward once: no re-read of params or targets.
            # grad_recon may be a stride-0 view (a sum's backward): the kernels take any row stride.
            grad_params = scale_saved_gradient(grad, grad_recon, ctx.grad_prescale, params)
        if grad_recon is not None and ctx.needs_input_grad[1]:
            # Soft targets: d NLL / d t = -logit for the Bernoulli and the continuous Bernoulli.
            row = grad_recon.reshape((-1,) + (1,) * (params.dim() - 1))
            grad_target = (-(params.to(row.dtype)) * row).to(target.dtype)
        grad_mu, grad_logvar = kl_backward(grad_kl, mu, dlogvar, logvar.dtype, traced_from=logvar)
        return (grad_params, grad_target, grad_mu, grad_logvar) + (None,) * (ctx.n_inputs - 4)

    register_routes(op, setup_context, fast_backward, deriv)
