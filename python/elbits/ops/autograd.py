"""How the fused ops meet each of torch's differentiation modes.

Each likelihood op is a ``torch.library.custom_op`` (what torch.compile, export, jit.trace and
dispatch modes see) with an ``autograd.Function`` twin that runs the same Python body for eager
calls (:func:`call_op`). Derivatives come from one of two places:

- the kernels' shortcut: the forward stores d recon / d params (or, for categorical-256, backward
  recomputes it in one pass), and backward only scales it. Exact for a first-order backward, and
  used only there: grad mode off inside backward (no ``create_graph``), no torch.func transform,
  no forward-mode AD (:func:`first_order_only`).
- everywhere else (``create_graph=True``, ``torch.func.grad`` / ``jacrev`` / ``hessian``,
  ``jvp`` and dual numbers, vmap over any of them): the op's PyTorch formulation in
  :mod:`elbits.reference` (float64), differentiated by torch, so a gradient of a gradient, a
  tangent or a batched gradient is torch's own. Forward values always come from the kernels.

The twin's ``vmap`` rule folds the vmapped dimension into the op's batch (one kernel call).
A transform the twin cannot serve (``torch.func.functionalize``, forward-mode AD on the custom
op, as under jit.trace or a dispatch mode) raises an error that names it, never a silent zero.
"""

from collections.abc import Callable
from typing import NamedTuple, Optional

import torch
from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

Tensor = torch.Tensor

_functorch_stack = torch._C._functorch.peek_interpreter_stack
_forward_ad = torch.autograd.forward_ad
_TransformType = torch._C._functorch.TransformType
# torch.func transforms an autograd.Function with setup_context, jvp and vmap serves
_TWIN_TRANSFORMS = (_TransformType.Grad, _TransformType.Jvp, _TransformType.Vmap)
_PLAIN = (torch.Tensor, torch.nn.Parameter)


def plain_eager(*tensors: Tensor) -> bool:
    """True when nothing is tracing or transforming these tensors: no torch.compile /
    AOT / make_fx / vmap / torch.jit.trace / forward-mode AD / torch_function or
    dispatch mode, and plain tensors (or ``nn.Parameter``s)."""
    return _untraced(*tensors) and _functorch_stack() is None and _forward_ad._current_level < 0


def _untraced(*tensors: Tensor) -> bool:
    # Checked in this order so that Dynamo stops at the first call (it folds is_compiling to True).
    return (
        not torch.compiler.is_compiling()
        and all(type(t) in _PLAIN for t in tensors)
        and not torch._C._is_torch_function_mode_enabled()
        and torch._C._len_torch_dispatch_stack() == 0
        and torch._C._get_tracing_state() is None
    )


def _transforms() -> list:
    return [] if _functorch_stack() is None else [i.key() for i in retrieve_all_functorch_interpreters()]


def first_order_only() -> bool:
    """Inside a backward: whether its result will not be differentiated again (grad mode off, i.e.
    no ``create_graph``; no torch.func transform; no forward-mode AD), so that a gradient the
    kernels computed, which carries no graph, is the whole answer."""
    return not torch.is_grad_enabled() and _functorch_stack() is None and _forward_ad._current_level < 0


class Derivatives(NamedTuple):
    """An op's differentiable PyTorch formulation, used outside the kernels' first-order shortcut."""

    nll: Callable[[Tensor, Tensor], Tensor]
    """(params, target) as the op takes them -> ``[B]`` NLL in nats (float64)."""
    target_grad: bool = False
    """Whether the NLL is differentiable in a float target (soft targets from another network)."""


def _kl_grads(ctx, grad_kl: Optional[Tensor], mu: Tensor, logvar: Tensor):
    # d KL / d mu = mu, d KL / d logvar = expm1(logvar) / 2, from the saved inputs: differentiable.
    if grad_kl is None:
        return None, None
    g_mu = (grad_kl * mu.to(grad_kl.dtype)).to(mu.dtype) if ctx.needs_input_grad[2] else None
    g_lv = (
        (0.5 * grad_kl * torch.expm1(logvar.to(grad_kl.dtype))).to(logvar.dtype)
        if ctx.needs_input_grad[3]
        else None
    )
    return g_mu, g_lv


def _recon_inputs(deriv: Derivatives, params: Tensor, target: Tensor, wanted: tuple) -> list:
    """Indices (0 params, 1 target) of the NLL's inputs to differentiate: those in ``wanted``
    that are differentiable at all."""
    return [i for i in (0, 1) if wanted[i] and (i == 0 or (deriv.target_grad and target.is_floating_point()))]


def _nll_of(deriv: Derivatives, params: Tensor, target: Tensor, which: list):
    fixed = [params, target]

    def f(*diff):
        args = list(fixed)
        for i, d in zip(which, diff):
            args[i] = d
        return deriv.nll(args[0], args[1])

    return f, [fixed[i] for i in which]


def _vjp(f, primals: list):
    result = torch.func.vjp(f, *primals)  # (output, vjp function): no aux here
    return result[0], result[1]


def torch_backward(ctx, deriv: Derivatives, grad_recon: Optional[Tensor], grad_kl: Optional[Tensor]) -> tuple:
    """Gradients for (params, target, mu, logvar) from the PyTorch formulation: a graph of torch
    ops, so ``create_graph`` and torch.func see every order. ``ctx.saved_tensors`` starts with
    (params, target, mu, logvar)."""
    params, target, mu, logvar = ctx.saved_tensors[:4]
    grads: list = [None, None]
    which = _recon_inputs(deriv, params, target, tuple(ctx.needs_input_grad[:2]))
    if grad_recon is not None and which:
        f, primals = _nll_of(deriv, params, target, which)
        out, vjp_fn = _vjp(f, primals)
        for i, primal, g in zip(which, primals, vjp_fn(grad_recon.to(out.dtype))):
            grads[i] = g.to(primal.dtype)
    return (*grads, *_kl_grads(ctx, grad_kl, mu, logvar))


def torch_jvp(ctx, deriv: Derivatives, tangents: tuple) -> tuple:
    """Tangents of (recon, kl) from the PyTorch formulation; ``ctx.saved_tensors`` (saved for
    forward) is (params, target, mu, logvar). The op's other outputs carry no tangent."""
    params, target, mu, logvar = ctx.saved_tensors[:4]
    t_params, t_target, t_mu, t_logvar = tangents[:4]
    odt = ctx.out_dtype
    recon_dot = torch.zeros(params.shape[0], dtype=odt, device=params.device)
    which = _recon_inputs(deriv, params, target, (t_params is not None, t_target is not None))
    if which:
        # Each sample's recon depends on its own row only, so its tangent is the row's gradient
        # dotted with the row's tangent. The gradient comes from reverse mode (torch.func.vjp):
        # a forward-mode transform here would nest inside the caller's dual level, which torch
        # refuses; vjp ops are themselves forward-differentiable, so jvp-of-jvp stays exact.
        f, primals = _nll_of(deriv, params, target, which)
        out, vjp_fn = _vjp(f, primals)
        for g, tan in zip(vjp_fn(torch.ones_like(out)), [(t_params, t_target)[i] for i in which]):
            recon_dot = recon_dot + (g * tan.to(g.dtype)).flatten(1).sum(1).to(odt)
    kl_dot = torch.zeros(mu.shape, dtype=odt, device=mu.device)
    if t_mu is not None:
        kl_dot = kl_dot + mu.to(odt) * t_mu.to(odt)
    if t_logvar is not None:
        kl_dot = kl_dot + 0.5 * torch.expm1(logvar.to(odt)) * t_logvar.to(odt)
    return (recon_dot, kl_dot) + (None,) * (ctx.n_outputs - 2)


def _fold_vmap(fn, info, in_dims, inputs):
    """vmap rule of a per-sample op: the vmapped dimension joins the batch ([V, B, ...] -> [V*B, ...]),
    one call, and each output is split back; empty placeholder outputs stay unbatched."""
    size = info.batch_size
    args = []
    for x, d in zip(inputs, in_dims):
        if isinstance(x, Tensor):
            x = x.movedim(d, 0) if d is not None else x.expand(size, *x.shape)
            x = x.reshape(size * x.shape[1], *x.shape[2:])
        args.append(x)
    outs, dims = [], []
    for o in fn.apply(*args):
        if o.dim() == 1 and o.shape[0] == 0:
            outs.append(o)
            dims.append(None)
        else:
            outs.append(o.reshape(size, o.shape[0] // size, *o.shape[1:]))
            dims.append(0)
    return tuple(outs), tuple(dims)


# custom op -> its autograd.Function twins for eager calls: (plain and dual numbers, torch.func)
_TWINS: dict = {}


def register_routes(op, setup_context: Callable, fast_backward: Callable, deriv: Derivatives) -> None:
    """Autograd for a fused op whose inputs start (params, target, mu, logvar) and whose outputs start
    (recon [B], kl [B, Z]).

    ``setup_context(ctx, inputs, output)`` marks outputs and sets ``ctx.stored`` (whether the
    forward left what ``fast_backward`` needs); it returns the extra tensors to save after
    (params, target, mu, logvar). ``fast_backward(ctx, grad_recon, grad_kl)`` is the kernels'
    first-order backward and returns one gradient per input.
    """

    def setup(ctx, inputs, output):
        ctx.n_inputs, ctx.n_outputs = len(inputs), len(output)
        ctx.out_dtype = output[0].dtype
        extra = setup_context(ctx, inputs, output)
        ctx.save_for_backward(*inputs[:4], *extra)
        if _forward_ad._current_level >= 0 or _functorch_stack() is not None:
            ctx.save_for_forward(*inputs[:4])

    def backward(ctx, grad_recon, grad_kl, *_unused):
        if ctx.stored and first_order_only():
            return fast_backward(ctx, grad_recon, grad_kl)
        return torch_backward(ctx, deriv, grad_recon, grad_kl) + (None,) * (ctx.n_inputs - 4)

    op.register_autograd(backward, setup_context=setup)
    impl = getattr(op, "_init_fn", None)  # the op's Python body (torch.library.CustomOpDef)
    if impl is None:
        return

    class Eager(torch.autograd.Function):
        """The op's body and autograd without the custom op's dispatch, for plain eager calls and
        dual numbers. The old-style forward(ctx, ...): a Function with setup_context re-binds its
        arguments with inspect.signature on every apply (~25 us a step, measured)."""

        @staticmethod
        def forward(ctx, *inputs):
            output = impl(*inputs)
            setup(ctx, inputs, output)
            return output

        @staticmethod
        def backward(ctx, *grads):
            return backward(ctx, *grads)

        @staticmethod
        def jvp(ctx, *tangents):
            return torch_jvp(ctx, deriv, tangents)

    class Transformable(torch.autograd.Function):
        """The same for torch.func transforms, which need setup_context and a vmap rule."""

        @staticmethod
        def forward(*inputs):
            return impl(*inputs)

        @staticmethod
        def setup_context(ctx, inputs, output):
            setup(ctx, inputs, output)

        @staticmethod
        def backward(ctx, *grads):
            return backward(ctx, *grads)

        @staticmethod
        def jvp(ctx, *tangents):
            return torch_jvp(ctx, deriv, tangents)

        @staticmethod
        def vmap(info, in_dims, *inputs):
            return _fold_vmap(Transformable, info, in_dims, inputs)

    _TWINS[op] = (Eager, Transformable)


def call_op(op, *inputs):
    """Run a fused op whose first four inputs are (params, target, mu, logvar).

    Eagerly (plain, or under torch.func grad / jvp / vmap and dual numbers) its autograd.Function
    twin runs: it skips the custom op's dispatcher and autograd wrapper (~70 us per
    forward+backward, measured on the 1x1x2x2 Bernoulli case) and serves the transforms the
    custom op cannot. Anything that traces (compile, export, jit.trace, fake tensors, dispatch
    and torch_function modes) gets the custom op with its fake kernel."""
    if torch.compiler.is_compiling():
        # Dynamo folds this to None when nothing transforms; inside torch.func.jvp / grad / vmap it
        # cannot evaluate it and runs the transform eagerly instead (a graph break; an error under
        # fullgraph), where the twin serves it. Traced, the custom op would give jvp a zero tangent.
        if torch._C._functorch.maybe_current_level() is not None:
            raise NotImplementedError(
                f"{op} under a torch.func transform inside torch.compile: call the transform eagerly"
            )
        return op(*inputs)
    twins = _TWINS.get(op)
    transforms = _transforms()
    if twins is not None and _untraced(*inputs[:4]) and all(t in _TWIN_TRANSFORMS for t in transforms):
        return (twins[1] if transforms else twins[0]).apply(*inputs)
    _refuse_untraceable_modes(op, inputs[:4], transforms)
    return op(*inputs)


def _refuse_untraceable_modes(op, tensors, transforms) -> None:
    # The custom op has no forward-mode rule (torch would give a zero tangent) and no functorch
    # support beyond vmap: say so rather than return something wrong.
    name = getattr(op, "_name", str(op))
    if any(t != _TransformType.Vmap for t in transforms):
        modes = ", ".join(str(t).split(".")[-1] for t in transforms)
        raise NotImplementedError(
            f"{name} under torch.func transforms [{modes}] together with tracing or a "
            "torch_function/dispatch "
            "mode is not supported: call elbits outside the tracing mode, or without torch.func.functionalize"
        )
    if _forward_ad._current_level >= 0 and any(
        _forward_ad.unpack_dual(t).tangent is not None for t in tensors
    ):
        raise NotImplementedError(
            f"forward-mode AD (dual tensors) through {name} is not supported under tracing or a "
            "torch_function/dispatch mode: compute the tangent outside that mode (eager elbits has a jvp "
            "rule), or use reverse mode (torch.autograd.grad)"
        )
