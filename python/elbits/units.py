"""Units of information: nats, bits and bits per dimension.

Every loss term elbits returns is in **nats per sample** (natural-log codelength of
one sample). 1 bit = ln 2 nats; bits/dim divides a per-sample codelength in bits by
the number of observed dimensions (pixels x channels) of one sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar, Union

import numpy as np
import torch

LN2: float = math.log(2.0)
NATS_PER_BIT: float = LN2
BITS_PER_NAT: float = 1.0 / LN2

_T = TypeVar("_T", float, torch.Tensor, np.ndarray)
Number = Union[float, int]


def nats_to_bits(nats: _T) -> _T:
    """Convert a codelength in nats to bits (same per-sample/per-batch basis)."""
    return nats * BITS_PER_NAT


def bits_to_nats(bits: _T) -> _T:
    """Convert a codelength in bits to nats (same per-sample/per-batch basis)."""
    return bits * NATS_PER_BIT


def bits_per_dim(nats_per_sample: _T, dims: int) -> _T:
    """Per-sample nats -> bits per observed dimension (``dims`` subpixels per sample)."""
    if dims <= 0:
        raise ValueError(f"dims must be a positive number of observed dimensions per sample, got {dims}")
    return nats_per_sample * (BITS_PER_NAT / dims)


_UNITS = {"nats": 1.0, "bits": NATS_PER_BIT}


@dataclass(frozen=True)
class Quantity:
    """An amount of information with its unit: ``Quantity(19.49, "bits")``.

    ``unit`` is ``"nats"`` or ``"bits"``; ``per`` says what it is counted over
    (``"sample"``, ``"batch"``, ``"image"``, ...). Printing shows both units.
    """

    value: float
    unit: str = "nats"
    per: str = "sample"

    def __post_init__(self) -> None:
        if self.unit not in _UNITS:
            raise ValueError(f"unit must be one of {sorted(_UNITS)}, got {self.unit!r}")

    @property
    def nats(self) -> float:
        """The value in nats."""
        return float(self.value) * _UNITS[self.unit]

    @property
    def bits(self) -> float:
        """The value in bits."""
        return self.nats * BITS_PER_NAT

    def to(self, unit: str) -> Quantity:
        """The same amount expressed in ``unit`` (``"nats"`` or ``"bits"``)."""
        if unit not in _UNITS:
            raise ValueError(f"unit must be one of {sorted(_UNITS)}, got {unit!r}")
        return Quantity(self.nats / _UNITS[unit], unit, self.per)

    def per_dim(self, dims: int) -> float:
        """Bits per dimension when this amount covers ``dims`` observed dimensions."""
        return bits_per_dim(self.nats, dims)

    def __float__(self) -> float:
        return float(self.value)

    def __format__(self, spec: str) -> str:
        spec = spec or ".4g"
        return f"{format(float(self.value), spec)} {self.unit}/{self.per}"

    def __str__(self) -> str:
        other = "bits" if self.unit == "nats" else "nats"
        return f"{self:.4g} ({self.to(other):.4g})"
