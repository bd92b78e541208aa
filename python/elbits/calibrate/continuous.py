"""MSE and L1 reconstructions read as codelengths: Gaussian and Laplace decoders with one shared scale.

A Gaussian decoder with std sigma on every subpixel has NLL = SSE / (2 sigma^2) + (D/2) log(2 pi sigma^2)
nats per sample (SSE: the sample's summed squared error, D its subpixels), so one nat of NLL is
2 sigma^2 of SSE. A Laplace decoder with scale b has NLL = SAE / b + D log(2 b) (SAE: summed absolute
error), so one nat is b of SAE. The scale belongs to the decoder, not to the loss: an MSE fixes none,
and the beta an MSE run trains with depends on it. The maximum-likelihood scale for the data's own
errors is sigma^2 = MSE per subpixel (Gaussian) and b = mean absolute error per subpixel (Laplace).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from .. import reference
from ..errors import InputError
from ..terms import ELBOTerms

RECON_KINDS = ("nll", "mse", "l1")
SCALE_NAMES = {"mse": "sigma", "l1": "b"}
# The scale at which the summed error equals the NLL up to a constant (2 sigma^2 = 1, b = 1).
DEFAULT_SCALES = {"mse": math.sqrt(0.5), "l1": 1.0}


def check_scale(kind: str, value: float) -> float:
    """``value`` as a positive finite decoder scale (sigma for ``"mse"``, b for ``"l1"``)."""
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{SCALE_NAMES[kind]} must be a positive number or 'ml', got {value!r}") from None
    if isinstance(value, bool) or not (s > 0 and math.isfinite(s)):
        raise InputError(f"{SCALE_NAMES[kind]} must be a positive finite decoder scale, got {value!r}")
    return s


def raw_per_nat(kind: str, scale: Optional[float]) -> float:
    """Units of the reconstruction as summed (nats, SSE or SAE) per nat of NLL."""
    if kind == "nll":
        return 1.0
    s = check_scale(kind, scale if scale is not None else DEFAULT_SCALES[kind])
    return 2.0 * s * s if kind == "mse" else s


def nll_nats(kind: str, raw: float, scale: float, dims: float) -> float:
    """The per-sample NLL (nats) of a summed error ``raw`` (SSE or SAE) over ``dims`` subpixels."""
    if kind == "nll":
        return raw
    if kind == "mse":
        return raw / (2.0 * scale * scale) + 0.5 * dims * math.log(2.0 * math.pi * scale * scale)
    return raw / scale + dims * math.log(2.0 * scale)


def _pair(recon: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(recon, torch.Tensor) and isinstance(target, torch.Tensor)):
        raise InputError(
            f"recon and target must be tensors, got {type(recon).__name__} and {type(target).__name__}"
        )
    if recon.shape != target.shape or recon.dim() < 1 or recon.numel() == 0:
        raise InputError(
            f"recon and target must be non-empty tensors of one shape [B, ...], got "
            f"{tuple(recon.shape)} and {tuple(target.shape)}"
        )
    if recon.is_complex() or target.is_complex():
        raise InputError("recon and target must be real tensors")
    r, t = recon.detach().to(torch.float64), target.detach().to(torch.float64)
    if not (torch.isfinite(r).all() and torch.isfinite(t).all()):
        raise InputError("recon and target must be finite")
    return r, t


def _errors(kind: str, recon: Any, target: Any) -> torch.Tensor:
    r, t = _pair(recon, target)
    e = r - t
    return e * e if kind == "mse" else e.abs()


def _ml_scale(kind: str, value: Any, recon: Any, target: Any) -> float:
    stat = {"mse": "mse", "l1": "mae"}[kind]
    if (value is None) == (recon is None and target is None):
        raise InputError(
            f"the ML {SCALE_NAMES[kind]} needs either {stat}= (per subpixel) or recon= and target="
        )
    if value is None:
        m = float(_errors(kind, recon, target).mean())
    else:
        try:
            m = float(value)
        except (TypeError, ValueError):
            raise InputError(
                f"{stat} must be a number (the mean error per subpixel), got {value!r}"
            ) from None
    if isinstance(value, bool) or not (m > 0 and math.isfinite(m)):
        raise InputError(
            f"{stat} = {value!r} per subpixel: the ML {SCALE_NAMES[kind]} needs a positive finite error "
            "(a perfect reconstruction has scale 0 and an NLL of -inf)"
        )
    return math.sqrt(m) if kind == "mse" else m


def ml_sigma(mse: Optional[float] = None, *, recon: Any = None, target: Any = None) -> float:
    """Maximum-likelihood std of a Gaussian decoder with one sigma for all subpixels: sqrt(MSE per subpixel).

    ``mse`` is the mean squared error per subpixel (``F.mse_loss(recon, target)``, torch's default
    mean), or pass the tensors ``recon`` and ``target`` ([B, ...], data units).
    """
    return _ml_scale("mse", mse, recon, target)


def ml_laplace_scale(mae: Optional[float] = None, *, recon: Any = None, target: Any = None) -> float:
    """Maximum-likelihood scale b of a Laplace decoder: the mean absolute error per subpixel
    (``F.l1_loss(recon, target)``), or from the tensors ``recon`` and ``target``."""
    return _ml_scale("l1", mae, recon, target)


def error_terms(recon: Any, target: Any, mu: Any, logvar: Any, kind: str = "mse") -> ELBOTerms:
    """:class:`ELBOTerms` for an MSE or L1 run, for :func:`~elbits.calibrate.audit`: ``recon`` holds each
    sample's summed squared (``"mse"``) or absolute (``"l1"``) error, not nats; ``kl`` the Gaussian KL
    per latent in nats. Float64, detached: bookkeeping for an audit, not a training loss."""
    if kind not in ("mse", "l1"):
        raise InputError(f"kind must be 'mse' or 'l1', got {kind!r}")
    err = _errors(kind, recon, target)
    if not (isinstance(mu, torch.Tensor) and isinstance(logvar, torch.Tensor)):
        raise InputError(
            f"mu and logvar must be tensors, got {type(mu).__name__} and {type(logvar).__name__}"
        )
    if mu.shape != logvar.shape or mu.dim() != 2 or mu.shape[0] != err.shape[0]:
        raise InputError(
            f"mu and logvar must both be [B, Z] with B = {err.shape[0]} (recon's batch), got "
            f"{tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    kl = reference.gaussian_kl(mu.detach(), logvar.detach())
    if not torch.isfinite(kl).all():
        raise InputError("mu and logvar must be finite (their KL is not)")
    per_sample = err.reshape(err.shape[0], -1).sum(dim=1)
    return ELBOTerms(per_sample, kl, int(err[0].numel()))
