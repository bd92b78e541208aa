"""Gaussian and Laplace decoders (MSE and L1 losses as likelihoods), in PyTorch ops.

``"gaussian"``: x ~ N(mean, sigma^2); ``"laplace"``: x ~ Laplace(mean, b); one scale per
subpixel, given as a float, a tensor broadcastable to ``mean`` (a learned scalar, per channel,
per subpixel) or its log. Two quantities, both nats per sample:

- density NLL (``discretize=None``): ``-sum log p(x)``. It depends on the units of x: rescaling
  the data by k adds ``D log k`` nats (the Jacobian), so it is not a code length.
- code length of 8-bit data (``discretize=(lo, hi)``: the 256 levels evenly spaced from lo to hi,
  e.g. (0, 1), (-1, 1), (0, 255)): ``-sum log P(bin of x)`` with the same mean and scale, each bin
  one level wide and the two edge bins open to -inf / +inf (as ``"discretized_gaussian"``). It is
  the same whatever the data's units. The Gaussian one runs the fused ``discretized_gaussian``
  kernel; the Laplace one is computed here.

The KL comes from the fused Gaussian KL kernel (:mod:`elbits.likelihoods.kl`), as for every
likelihood. docs/likelihoods-continuous.md has the formulas and figures.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Union

import torch
import torch.nn.functional as F

from .._dtypes import FLOATS, out_dtype
from ..errors import InputError
from ..ops import validate as v
from ..ops.autograd import plain_eager
from ..ops.discretized_gaussian import discretized_gaussian_terms
from ..terms import ELBOTerms
from .kl import gaussian_kl

Tensor = torch.Tensor
Scale = Union[float, Tensor]
LEVELS = 256
_LOG2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LEVEL_TARGETS = (torch.uint8, torch.int64)
# A float target this close to a level (in levels) is that level: float32 data / 255 is within 1e-4.
_GRID_TOL = 0.01


# ----------------------------------------------------------------- arguments


def check_discretize(discretize: object) -> Optional[tuple[float, float]]:
    """``None`` or ``(lo, hi)``, finite with lo < hi; an InputError otherwise."""
    if discretize is None:
        return None
    try:
        if not isinstance(discretize, (tuple, list)):
            raise TypeError
        lo, hi = (float(e) for e in discretize)
    except (TypeError, ValueError):
        raise InputError(
            f"discretize must be (lo, hi), the range of the 256 levels of 8-bit data, e.g. (0, 1), "
            f"(-1, 1) or (0, 255), or None for the density; got {discretize!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(f"discretize must be (lo, hi) with finite lo < hi, got {discretize!r}")
    return lo, hi


def check_scale_arg(likelihood: str, scale: object, log_scale: object) -> None:
    what = "sigma" if likelihood == "gaussian" else "b"
    if (scale is None) == (log_scale is None):
        raise InputError(
            f"likelihood {likelihood!r} needs exactly one of scale= ({what}, a float > 0 or a tensor "
            f"broadcastable to mean) and log_scale= (log {what}, a tensor), got "
            f"{'both' if scale is not None else 'neither'}"
        )
    if scale is not None and not isinstance(scale, Tensor):
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise InputError(f"scale must be a float > 0 or a tensor, got {type(scale).__name__}")
        if not (math.isfinite(float(scale)) and float(scale) > 0):
            raise InputError(f"scale ({what}) must be a finite number > 0 in the data's units, got {scale}")
    if log_scale is not None and not isinstance(log_scale, Tensor):
        raise InputError(
            f"log_scale must be a tensor (log {what}), got {type(log_scale).__name__}; "
            "give a fixed value as scale="
        )


def _check_scale_tensor(name: str, t: Tensor, mean: Tensor) -> None:
    v.check_dtype(name, t, FLOATS)
    v.check_same_device({"mean": mean, name: t})
    try:
        shape = torch.broadcast_shapes(t.shape, mean.shape)
    except RuntimeError:
        shape = None
    if shape != mean.shape:
        raise InputError(
            f"{name} of shape {tuple(t.shape)} does not broadcast to mean's shape {tuple(mean.shape)} "
            "(a scalar, per channel [1, C, 1, 1], or per subpixel like mean)"
        )


def _log_scale(scale: Optional[Scale], log_scale: Optional[Tensor], dtype: torch.dtype, check: bool):
    """log sigma / log b as a float or a tensor in ``dtype``; with ``check``, an InputError for
    values that are not finite (and > 0 for ``scale``)."""
    if log_scale is not None:
        if check and not bool(torch.isfinite(log_scale).all()):
            raise InputError("log_scale contains NaN or Inf (pass check_finite=False to get NaN through)")
        return log_scale.to(dtype)
    if isinstance(scale, Tensor):
        if check and not bool((torch.isfinite(scale) & (scale > 0)).all()):
            raise InputError(
                "scale has values that are not finite numbers > 0 (pass check_finite=False to get NaN)"
            )
        return torch.log(scale.to(dtype))
    assert scale is not None
    return math.log(float(scale))


def _exp_neg(ls) -> Scale:
    return math.exp(-ls) if isinstance(ls, float) else torch.exp(-ls)


# ----------------------------------------------------------------- targets


def _levels(target: Tensor, lo: float, hi: float, check: bool) -> Tensor:
    """int64 levels 0..255 of an 8-bit target: uint8/int64 levels, or float32/float64 values on the
    grid lo + level (hi - lo)/255; with ``check`` (plain eager mode), an InputError for values off
    the grid or out of range (one host sync on CUDA)."""
    if target.dtype in _LEVEL_TARGETS:
        levels = target.long()
        if check and target.dtype == torch.int64 and not bool(((levels >= 0) & (levels < LEVELS)).all()):
            raise InputError(
                "target has levels outside 0..255 (discretize reads integer targets as 8-bit levels)"
            )
        return levels
    pos = (target.detach().double() - lo) * ((LEVELS - 1) / (hi - lo))
    levels = pos.round()
    if check:
        inside = (levels >= 0) & (levels < LEVELS)
        if not bool(inside.all()):
            raise InputError(f"target has values outside discretize=({lo:g}, {hi:g}) (or NaN)")
        off = float((pos - levels).abs().max())
        if off > _GRID_TOL:
            raise InputError(
                f"target has values off the 256-level grid of discretize=({lo:g}, {hi:g}) (by up to "
                f"{off:.3g} "
                "levels): a code length needs the 8-bit data itself, not dequantized or resampled values"
            )
    # Unchecked (compile, vmap, jvp), a value off the range becomes level -1: NaN for the Laplace
    # below, a level the fused Gaussian kernel reports.
    inside = (levels >= 0) & (levels < LEVELS)
    return torch.where(inside, levels, -1.0).long()


# ----------------------------------------------------------------- densities


def _per_sample(err: Tensor, log_scale, power: int, const: float) -> Tensor:
    """``[B]`` sum over each sample of ``err exp(-power log_scale) / power + log_scale + const``,
    ``err`` being (x - m)^2 or |x - m| from torch's fused loss kernels. A scale shared by every
    element (a float, a one-element tensor) multiplies the per-sample sum, not each element."""
    dims = err[0].numel()
    if isinstance(log_scale, Tensor) and log_scale.numel() > 1:
        return (err * torch.exp(-power * log_scale) / power + log_scale).flatten(1).sum(1) + dims * const
    ls = log_scale if isinstance(log_scale, float) else log_scale.reshape(())
    factor = math.exp(-power * ls) if isinstance(ls, float) else torch.exp(-power * ls)
    return err.flatten(1).sum(1) * (factor / power) + dims * (ls + const)


def gaussian_density_nll(mean: Tensor, target: Tensor, log_scale) -> Tensor:
    """``[B]`` -sum log N(x; mean, exp(log_scale)^2), nats per sample."""
    sq = F.mse_loss(mean, target, reduction="none")
    return _per_sample(sq, log_scale, 2, _HALF_LOG_2PI)


def laplace_density_nll(mean: Tensor, target: Tensor, log_scale) -> Tensor:
    """``[B]`` -sum log Laplace(x; mean, exp(log_scale)), nats per sample."""
    return _per_sample(F.l1_loss(mean, target, reduction="none"), log_scale, 1, _LOG2)


def _log1mexp(d: Tensor) -> Tensor:
    return torch.log(-torch.expm1(-d))


def discretized_laplace_logp(levels: Tensor, mean: Tensor, log_scale, lo: float, hi: float) -> Tensor:
    """Elementwise log P(bin of ``levels``) under Laplace(mean, exp(log_scale)), 256 levels on [lo, hi]
    (NaN for a level outside 0..255).

    With a = (x + h - mean)/b and c = (x - h - mean)/b (h half a level), a bin above the mean is
    reflected below it (the density is symmetric: a, c -> -c, -a), so c < 0 and the bin mass is
    written so that nothing cancels: ``e^a (1 - e^-(a-c)) / 2`` when the bin is below the mean,
    ``-(expm1(-a) + expm1(c)) / 2`` when it holds the mean. The edge bins are F(a) (level 0) and
    1 - F(c) = F(-c) (level 255). Every branch sees clamped arguments, so the ones ``where`` drops
    stay finite (no NaN gradient).
    """
    step = (hi - lo) / (LEVELS - 1)
    x = levels.to(mean.dtype) * step + lo
    inv = _exp_neg(log_scale)
    a = (x + 0.5 * step - mean) * inv
    c = (x - 0.5 * step - mean) * inv
    a, c, e = torch.minimum(a, -c), torch.minimum(c, -a), torch.where(levels == 0, a, -c)
    width = _log1mexp(step * inv) if isinstance(inv, Tensor) else math.log(-math.expm1(-step * inv))
    interior = torch.where(a <= 0, a + width, torch.log(-(torch.expm1(-a.clamp(min=0)) + torch.expm1(c))))
    edge = torch.where(e < 0, e.clamp(max=0), torch.log1p(-0.5 * torch.exp(-e.clamp(min=0))) + _LOG2)
    lp = torch.where((levels == 0) | (levels == LEVELS - 1), edge, interior)
    return torch.where((levels >= 0) & (levels < LEVELS), lp - _LOG2, math.nan)


# ----------------------------------------------------------------- entry points


def _raise_nonfinite(recon: Tensor, mean: Tensor, target: Tensor) -> None:
    """After the forward, one InputError naming what made a sample's loss NaN/Inf (checked on the
    [B] result, so valid inputs cost one small reduction)."""
    if bool(torch.isfinite(recon).all()):
        return
    problems = [
        f"{n} contains NaN or Inf"
        for n, t in (("mean", mean), ("target", target))
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if not problems:
        problems = [
            f"the reconstruction loss overflowed {str(recon.dtype).replace('torch.', '')} "
            "(the target is too many scales from the mean)"
        ]
    raise InputError("; ".join(problems) + " (pass check_finite=False to get NaN through)")


def continuous_terms(
    likelihood: str,
    mean,
    target,
    mu,
    logvar,
    check_finite: bool = True,
    recon_grad_hint: float | None = None,
    *,
    scale: Optional[Scale] = None,
    log_scale: Optional[Tensor] = None,
    discretize: object = None,
) -> ELBOTerms:
    """``"gaussian"`` / ``"laplace"``: ``mean`` ``[B, ...]`` and ``target`` of its shape (see the
    module docstring for ``scale``, ``log_scale``, ``discretize``). ``recon`` in nats per sample."""
    rng = check_discretize(discretize)
    check_scale_arg(likelihood, scale, log_scale)
    # 16-bit floats cannot hold the 256 levels of [0, 1] exactly: 8-bit targets are levels or float32/64.
    targets = FLOATS if rng is None else _LEVEL_TARGETS + (torch.float32, torch.float64)
    mean, target, mu, logvar, batch, dims = v.check_inputs(
        "mean", mean, target, mu, logvar, targets, same_shape=True
    )
    scale_t = log_scale if log_scale is not None else scale
    dtypes = [mean.dtype, mu.dtype, logvar.dtype]
    if isinstance(scale_t, Tensor):
        _check_scale_tensor("log_scale" if log_scale is not None else "scale", scale_t, mean)
        dtypes.append(scale_t.dtype)
    odt = out_dtype(*dtypes)
    # Value checks read results on the host: plain eager mode only (not under compile, vmap, jvp).
    eager = plain_eager(mean, target, mu, logvar, *([scale_t] if isinstance(scale_t, Tensor) else []))
    check = check_finite and eager
    ls = _log_scale(scale, log_scale, odt, check)
    m = mean.to(odt)
    if rng is None:
        t = target.to(odt)
        nll = gaussian_density_nll if likelihood == "gaussian" else laplace_density_nll
        recon = nll(m, t, ls)
    else:
        levels = _levels(target, *rng, check=eager)
        if likelihood == "gaussian":
            return _discretized_gaussian(m, levels, ls, rng, mu, logvar, check_finite, recon_grad_hint)
        recon = -discretized_laplace_logp(levels, m, ls, *rng).flatten(1).sum(1)
    kl = gaussian_kl(mu, logvar, odt, check_finite)
    if check:
        _raise_nonfinite(recon, mean, target)
    return ELBOTerms(recon, kl, dims)


def _discretized_gaussian(
    mean: Tensor, levels: Tensor, log_scale, rng, mu, logvar, check_finite, hint
) -> ELBOTerms:
    """The fused ``discretized_gaussian`` op (data on [-1, 1]) on this range's parameters: x' = k x + o
    with k = 2/(hi - lo) maps the levels onto [-1, 1], so mean' = k mean + o, log sigma' = log sigma + log
    k."""
    lo, hi = rng
    k = 2.0 / (hi - lo)
    batch = mean.shape[0]
    m = (mean * k - (lo * k + 1.0)).reshape(batch, 1, -1)
    ls = log_scale + math.log(k)
    ls = torch.full_like(m, ls) if isinstance(ls, float) else ls.expand(mean.shape).reshape(batch, 1, -1)
    params = torch.cat([m, ls.to(m.dtype)], dim=1)
    return discretized_gaussian_terms(params, levels.reshape(batch, 1, -1), mu, logvar, check_finite, hint)
