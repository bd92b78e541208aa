"""``elbits::scale_rows`` (csrc/cpu/scale_rows.cpp): a stored gradient times each row's upstream
gradient over the ``grad_prescale`` the forward already applied."""

# No `from __future__ import annotations` here: torch 2.4's custom_op reads the signature's
# annotations as objects and cannot parse them as strings.

from typing import Optional

import torch

from .._core import core
from .._dtypes import code
from .launch import cuda_stream, num_threads


def scale_rows_into(grad: torch.Tensor, out: torch.Tensor, scale: torch.Tensor, grad_prescale: float) -> None:
    """``out[b, ...] = grad[b, ...] * (scale[b] / grad_prescale)``; ``out`` may be ``grad`` itself.
    The kernels leave rows whose ``scale[b]`` equals ``grad_prescale`` untouched when in place."""
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
        grad_prescale,
    )
    if grad.is_cuda:
        core.cuda_scale_rows(*args, cuda_stream(grad))
    else:
        core.scale_rows(*args, num_threads())


@torch.library.custom_op("elbits::scale_rows", mutates_args=())
def scale_rows(
    grad: torch.Tensor, scale: torch.Tensor, grad_prescale: float, anchor: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """``grad[b, ...] * (scale[b] / grad_prescale)`` in float32 arithmetic (float64 for float64),
    grad's dtype; ``grad_prescale`` is the factor the forward already applied.

    ``anchor`` (unread): the input this is the gradient of. A traced backward (torch.compile) then
    keeps it, so that AOTAutograd sees a saved tensor requiring grad and refuses a double backward
    (torch 2.4 otherwise returns this gradient without a graph: a gradient penalty would be 0).

    Out of place on purpose: the stored gradient must survive for a second
    backward through the same graph (retain_graph, autograd.grad per term, gradcheck).
    """
    out = torch.empty_like(grad, memory_format=torch.contiguous_format)
    scale_rows_into(grad, out, scale, grad_prescale)
    return out


@scale_rows.register_fake
def _(
    grad: torch.Tensor, scale: torch.Tensor, grad_prescale: float, anchor: Optional[torch.Tensor] = None
) -> torch.Tensor:
    return torch.empty_like(grad, memory_format=torch.contiguous_format)
