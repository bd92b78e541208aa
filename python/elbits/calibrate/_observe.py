"""Read rate and distortion from whatever the user has: ELBOTerms, a meter, or a dict."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional

import torch

from ..terms import ELBOTerms
from ..units import BITS_PER_NAT, NATS_PER_BIT


class Observation(NamedTuple):
    """Batch-mean rate R and distortion D, nats per sample; ``dims`` when known."""

    rate_nats: float
    distortion_nats: float
    dims: Optional[float] = None

    @property
    def rate_bits(self) -> float:
        return self.rate_nats * BITS_PER_NAT

    @property
    def distortion_bits(self) -> float:
        return self.distortion_nats * BITS_PER_NAT

    @property
    def distortion_bits_per_dim(self) -> float:
        if not self.dims:
            raise ValueError(
                "distortion in bits/dim needs the observed dims per sample, which this source lacks"
            )
        return self.distortion_bits / self.dims


def _nats(scalars: Mapping[str, Any], name: str) -> float:
    # Meters report both units; accept either so hand-written dicts work too.
    if f"{name}_nats" in scalars:
        return float(scalars[f"{name}_nats"])
    if f"{name}_bits" in scalars:
        return float(scalars[f"{name}_bits"]) * NATS_PER_BIT
    raise KeyError(f"expected '{name}_nats' or '{name}_bits' among {sorted(scalars)}")


def observe(source: Any) -> Observation:
    """``ELBOTerms`` (batch means of recon and kl_total), an object with ``scalars()``
    (a :class:`RateDistortionMeter`), or a mapping with ``rate_nats``/``rate_bits`` and
    ``distortion_nats``/``distortion_bits`` (optionally ``distortion_bits_per_dim``)."""
    if isinstance(source, Observation):
        return source
    if isinstance(source, ELBOTerms):
        if source.recon.numel() == 0:
            raise ValueError("cannot observe an empty batch")
        # One host sync for both numbers, not two.
        d = source.recon.detach().double().mean()
        r = source.kl.detach().double().sum(dim=1).mean()
        d_f, r_f = torch.stack([d, r]).tolist()
        obs = Observation(r_f, d_f, float(source.dims))
    else:
        scalars = source.scalars() if hasattr(source, "scalars") else source
        if not isinstance(scalars, Mapping):
            raise TypeError(
                "expected ELBOTerms, an object with scalars() (a meter) or a mapping of "
                f"rate/distortion scalars, got {type(source).__name__}"
            )
        rate, dist = _nats(scalars, "rate"), _nats(scalars, "distortion")
        dims = float(scalars["dims"]) if scalars.get("dims") else None
        bpd = scalars.get("distortion_bits_per_dim")
        if dims is None and bpd is not None and float(bpd) > 0.0:
            # A hand-written mapping without dims (meters give it): recover it from its bits/dim.
            dims = dist * BITS_PER_NAT / float(bpd)
        obs = Observation(rate, dist, dims)
    if not (math.isfinite(obs.rate_nats) and math.isfinite(obs.distortion_nats)):
        raise ValueError(
            f"rate and distortion must be finite, got R={obs.rate_nats} D={obs.distortion_nats} nats"
        )
    return obs


def as_bits(value: Any, name: str) -> float:
    """A plain number in bits, anything with ``.bits`` (a Quantity), or a result holding one
    as ``.entropy`` / ``.total`` (``elbits.entropy``'s empirical and marginal-pixel entropies)."""
    for attr in ("entropy", "total"):
        inner = getattr(value, attr, None)
        if hasattr(inner, "bits"):
            value = inner
            break
    bits = getattr(value, "bits", value)
    try:
        out = float(bits)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number of bits or have a .bits attribute, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out
