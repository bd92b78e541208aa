"""Bernoulli likelihood from probabilities (decoders that end in a sigmoid), in PyTorch ops.

The reconstruction is exactly ``F.binary_cross_entropy(p, t, reduction="none")`` summed over
each sample, so it has that function's semantics, its gradients and every autograd mode
torch gives it: in particular each log is clamped at -100, so an element whose probability
is exactly 0 or 1 against a target on the other side counts 100 nats whatever the
decoder's logit was. In float32 ``sigmoid(x)`` rounds to 1.0 from x ~ 16.6, so a confident
decoder reads 100 nats where its logit says ~17-100: :class:`SaturationWarning`. The
fused ``input="logits"`` path has no such limit; use it where the logits can be had.
"""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType
from typing import Optional

import torch
import torch.nn.functional as F

from .._dtypes import out_dtype
from ..errors import InputError
from ..ops import validate as v
from ..ops.autograd import plain_eager
from ..terms import ELBOTerms
from .kl import gaussian_kl

Tensor = torch.Tensor

_TARGETS = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.bool)
# torch.nn.functional.binary_cross_entropy clamps each log at this value (ATen Loss.cpp).
BCE_LOG_CLAMP = -100.0


class SaturationWarning(UserWarning):
    """Probabilities of exactly 0 or 1 met a target on the other side: the clamped loss is not
    the decoder's true NLL."""


def _in_unit(t: Tensor) -> Tensor:
    return (t >= 0) & (t <= 1)  # False for NaN


def _checked(probs: Tensor, target: Tensor) -> None:
    """One InputError naming every tensor with values binary_cross_entropy rejects (it raises a
    RuntimeError on the CPU and a device-side assert, which ends the CUDA context, on a GPU)."""
    problems = []
    if not bool(_in_unit(probs).all()):
        problems.append("probs has values outside [0, 1] (or NaN/Inf)")
    if target.is_floating_point() and not bool(_in_unit(target).all()):
        problems.append("target has values outside [0, 1] (or NaN)")
    elif target.dtype == torch.uint8 and bool((target > 1).any()):
        problems.append("target has uint8 values other than 0 and 1")
    if problems:
        raise InputError(
            "; ".join(problems)
            + " (input='probs' reads the decoder's probabilities; pass check_finite=False "
            "to get NaN for those samples instead)"
        )


def _warn_saturated(probs: Tensor, target: Tensor) -> None:
    # One fixed message, so Python's default filter shows it once per call site, not every step.
    clamped = ((probs == 1) & (target < 1)) | ((probs == 0) & (target > 0))
    if bool(clamped.any()):
        warnings.warn(
            "probabilities of exactly 0 or 1 met targets on the other side: binary_cross_entropy clamps "
            "their "
            "log at -100, so each such element counts up to 100 nats whatever the decoder's logit (float32 "
            "sigmoid is 1.0 from logit 16.6), an overestimate for logits below 100; pass the logits instead "
            "(input='logits', the default) for the exact loss",
            SaturationWarning,
            stacklevel=_caller_level(),
        )


_SKIP = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
    os.path.dirname(os.path.abspath(torch.__file__ or "")) + os.sep,
)


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside elbits and torch (the user's call of
    ``elbo_terms`` or of the criterion), counted from the caller of ``warnings.warn``."""
    frame: Optional[FrameType] = sys._getframe(2)
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_SKIP):
        frame, level = frame.f_back, level + 1
    return level


def bernoulli_probs_nll(probs: Tensor, target: Tensor, check_finite: bool = True) -> Tensor:
    """``[B]`` ``F.binary_cross_entropy(probs, target)`` summed over each sample, nats, in
    ``probs``' dtype (float32 for float16/bfloat16). ``check_finite=False``: invalid elements make
    their sample's loss NaN instead of raising."""
    odt = out_dtype(probs.dtype)
    p = probs.to(odt)
    t = target.to(odt)
    # Value checks read a result on the host: plain eager mode only (not under compile, vmap, jvp).
    eager = plain_eager(probs, target)
    if check_finite and eager:
        _checked(probs, target)
    if eager:
        with torch.no_grad():
            _warn_saturated(p, t)
    if check_finite and eager:
        return F.binary_cross_entropy(p, t, reduction="none").flatten(1).sum(1)
    # No host sync: invalid elements are replaced before binary_cross_entropy sees them
    # (its range check) and their samples marked NaN.
    ok = _in_unit(p) & _in_unit(t)
    nll = F.binary_cross_entropy(torch.where(ok, p, 0.5), torch.where(ok, t, 0.5), reduction="none")
    return torch.where(ok, nll, torch.nan).flatten(1).sum(1)


def bernoulli_probs_terms(
    probs, target, mu, logvar, check_finite: bool = True, recon_grad_hint: float | None = None
) -> ELBOTerms:
    """``likelihood="bernoulli", input="probs"``: ``probs`` ``[B, ...]`` in [0, 1] (a sigmoid's
    output), target of the same shape (float in [0, 1], uint8 {0, 1} or bool). ``recon_grad_hint``
    is accepted and unused (autograd computes this gradient)."""
    probs, target, mu, logvar, _, dims = v.check_inputs(
        "probs", probs, target, mu, logvar, _TARGETS, same_shape=True
    )
    recon = bernoulli_probs_nll(probs, target, check_finite)
    kl = gaussian_kl(mu, logvar, out_dtype(probs.dtype, mu.dtype, logvar.dtype), check_finite)
    return ELBOTerms(recon.to(kl.dtype), kl, dims)
