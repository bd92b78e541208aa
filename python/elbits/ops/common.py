"""Pieces shared by the likelihood ops: the KL half, the row-scaling backward."""

import math
import struct
from typing import Optional

import torch

from .._core import core
from .._dtypes import code, out_dtype
from .autograd import Derivatives, call_op, plain_eager, register_routes  # noqa: F401  (call_op: re-exported)
from .buffers import gradient_buffer
from .device_flags import flags_for
from .validate import raise_flags


def num_threads() -> int:
    """The CPU kernels follow torch's intra-op thread setting."""
    return torch.get_num_threads()


def cuda_stream(t: torch.Tensor) -> int:
    """torch's current stream on ``t``'s device: CUDA kernels run in order with torch's own work."""
    return torch.cuda.current_stream(t.device).cuda_stream


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


def needs_grad(*tensors: torch.Tensor) -> bool:
    """Whether an op on these tensors must support backward (grad mode on, an input requiring grad)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def grad_args(
    hint: Optional[float], batch: int, params: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[bool, float]:
    """``(compute_grad, prescale)`` for a stored-gradient op: whether to write the gradient,
    and the factor to write it times (see :func:`grad_prescale`)."""
    if not needs_grad(params, mu, logvar):
        return False, 1.0
    return True, grad_prescale(hint, batch, params, mu, logvar)


def stored_gradient(slot: str, params: torch.Tensor, compute_grad: bool) -> torch.Tensor:
    """The buffer a stored-gradient op writes d recon / d params into (params' shape and
    dtype; reused between calls on the CPU, see :mod:`elbits.ops.buffers`), or an empty
    placeholder when no gradient is asked for."""
    if not compute_grad:
        return torch.empty((0,), dtype=params.dtype, device=params.device)
    return gradient_buffer(slot, params.shape, params.dtype, params.device)


def kl_then_raise(
    flags: dict[str, bool],
    mu: torch.Tensor,
    logvar: torch.Tensor,
    odt: torch.dtype,
    compute_grad: bool,
    check_finite: bool,
    always: tuple[str, ...] = (),
):
    """The KL half of a CPU op after its likelihood kernel, then one error naming every
    input problem the kernels found: all of them with ``check_finite``, else only the
    flags in ``always``. Returns (kl, d kl / d logvar)."""
    kl, dlogvar, kl_flags = gaussian_kl_into(mu, logvar, odt, compute_grad)
    found = {**flags, **kl_flags}
    raise_flags(found if check_finite else {k: found.get(k, False) for k in always})
    return kl, dlogvar


def grad_prescale(
    hint: Optional[float], batch: int, params: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> float:
    """The factor the forward multiplies the stored gradient by: the upstream gradient
    each sample's recon is expected to get, rounded as backward will see it (recon's
    dtype), so that backward can recognise it exactly and skip its pass. ``hint`` is only read in plain
    eager mode: under tracing it may be symbolic, and reading it would specialise it."""
    if not plain_eager(params, mu, logvar):
        # Traced code scales out of place in backward anyway: nothing to skip.
        return 1.0
    if hint is not None:
        hint = float(hint)
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
    if hint is None:
        hint = 1.0 / batch  # a batch mean is the common case
    if out_dtype(params.dtype, mu.dtype, logvar.dtype) == torch.float32:
        hint = struct.unpack("f", struct.pack("f", hint))[0]
    return hint


_HINT_MIN, _HINT_MAX = 1e-20, 1e20


def _scale_into(grad: torch.Tensor, out: torch.Tensor, scale: torch.Tensor, prescale: float) -> None:
    batch = grad.shape[0]
    args = (
        grad.data_ptr(),
        out.data_ptr(),
        code(grad.dtype),
        batch,
        grad.numel() // max(batch, 1),
        scale.data_ptr(),
        code(scale.dtype),
        scale.stride(0),
        prescale,
    )
    if grad.is_cuda:
        core.cuda_scale_rows(*args, cuda_stream(grad))
    else:
        core.scale_rows(*args, num_threads())


def kl_backward(grad_kl, mu, dlogvar, logvar_dtype: torch.dtype, traced_from: Optional[torch.Tensor] = None):
    """Gradients of the KL w.r.t. mu (= mu) and logvar (= dlogvar), scaled by grad_kl, in the
    dtypes of mu and logvar. Traced (torch.compile), d KL / d logvar is taken from logvar itself
    (``traced_from``) rather than the stored dlogvar, for the reason :func:`scale_rows` keeps its anchor."""
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


@torch.library.custom_op("elbits::scale_rows", mutates_args=())
def scale_rows(
    grad: torch.Tensor, scale: torch.Tensor, prescale: float, anchor: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """``grad[b, ...] * (scale[b] / prescale)`` in float32 arithmetic (float64 for float64),
    grad's dtype; ``prescale`` is the factor the forward already applied.

    ``anchor`` (unread): the input this is the gradient of. A traced backward (torch.compile) then
    keeps it, so that AOTAutograd sees a saved tensor requiring grad and refuses a double backward
    (torch 2.4 otherwise returns this gradient without a graph: a gradient penalty would be 0).

    Out of place on purpose: the stored gradient must survive for a second
    backward through the same graph (retain_graph, autograd.grad per term, gradcheck).
    """
    out = torch.empty_like(grad, memory_format=torch.contiguous_format)
    _scale_into(grad, out, scale, prescale)
    return out


@scale_rows.register_fake
def _(
    grad: torch.Tensor, scale: torch.Tensor, prescale: float, anchor: Optional[torch.Tensor] = None
) -> torch.Tensor:
    return torch.empty_like(grad, memory_format=torch.contiguous_format)


_keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)


def scale_saved_gradient(
    grad: torch.Tensor, scale: torch.Tensor, prescale: float = 1.0, anchor: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """The backward of a per-sample sum whose per-element gradient the forward stored
    (times ``prescale``, the upstream gradient it expected).

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
        _scale_into(grad, grad, scale, prescale)
        return grad
    return scale_rows(grad, scale, prescale, anchor)


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


def register_stored_gradient_autograd(op, deriv: Derivatives, prescale_index: Optional[int] = None) -> None:
    """Autograd for ops whose forward returns ``(recon, kl, d recon/d params, d kl/d logvar)``.

    The op's inputs are ``(params, target, mu, logvar, *settings, compute_grad, check_finite)``.
    The gradient w.r.t. params was written by the forward pass, times the float input at
    ``prescale_index`` if given; a first-order backward only rescales it per sample
    (:func:`scale_saved_gradient`) and applies the KL's closed form. Every other mode
    differentiates ``deriv`` (:mod:`elbits.ops.autograd`).
    """

    def setup_context(ctx, inputs, output):
        _recon, _kl, grad, dlogvar = output
        ctx.prescale = 1.0 if prescale_index is None else float(inputs[prescale_index])
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
            grad_params = scale_saved_gradient(grad, grad_recon, ctx.prescale, params)
        if grad_recon is not None and ctx.needs_input_grad[1]:
            # Soft targets: d NLL / d t = -logit for the Bernoulli and the continuous Bernoulli.
            row = grad_recon.reshape((-1,) + (1,) * (params.dim() - 1))
            grad_target = (-(params.to(row.dtype)) * row).to(target.dtype)
        grad_mu, grad_logvar = kl_backward(grad_kl, mu, dlogvar, logvar.dtype, traced_from=logvar)
        return (grad_params, grad_target, grad_mu, grad_logvar) + (None,) * (ctx.n_inputs - 4)

    register_routes(op, setup_context, fast_backward, deriv)
