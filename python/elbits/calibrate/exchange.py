"""The exchange rate between bits of rate (KL) and bits of distortion (reconstruction).

Theory, from the data's entropies: a decoder that ignores z (rate 0) can at best code
each pixel on its own, D = sum_i H(X_i); a perfect reconstruction (D = 0) needs a rate
of at least H(X); and in between D + R >= H(X). Spending H(X) bits of rate therefore
saves sum_i H(X_i) bits of distortion: on average one bit of rate buys
sum_i H(X_i) / H(X) >= 1 bits of distortion.

Measurement, from a beta sweep: the lower convex hull of the (R, D) points is the
frontier a D + beta R optimiser can reach, and on each of its segments the slope
-dD/dR (bits per bit) is the beta that would make both ends equally good.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from ..units import BITS_PER_NAT
from ._observe import as_bits, observe


@dataclass(frozen=True)
class ExchangeTheory:
    """Exchange rate implied by the data: ``joint_bits`` = H(X), ``marginal_sum_bits`` = sum_i H(X_i)."""

    joint_bits: float
    marginal_sum_bits: float

    @property
    def price(self) -> float:
        """Average bits of distortion one bit of rate buys, sum_i H(X_i) / H(X) (>= 1)."""
        return self.marginal_sum_bits / self.joint_bits

    @property
    def total_correlation_bits(self) -> float:
        """sum_i H(X_i) - H(X): the distortion a latent code saves beyond one bit per bit."""
        return self.marginal_sum_bits - self.joint_bits

    def min_rate_bits(self, distortion_bits: float) -> float:
        """The bound R >= H(X) - D, bits per sample."""
        return max(0.0, self.joint_bits - float(distortion_bits))

    def chord_distortion_bits(self, rate_bits: float) -> float:
        """Distortion on the straight line from (0, sum_i H(X_i)) to (H(X), 0).

        The true frontier is convex, so it lies on or below this chord.
        """
        r = min(max(float(rate_bits), 0.0), self.joint_bits)
        return self.marginal_sum_bits * (1.0 - r / self.joint_bits)

    def __str__(self) -> str:
        return (
            f"H(X) = {self.joint_bits:.4g} bits, sum H(X_i) = {self.marginal_sum_bits:.4g} bits: "
            f"one bit of rate buys {self.price:.4g} bits of distortion on average "
            f"(a beta above {self.price:.4g} prices rate above its average worth)"
        )


def exchange_theory(joint_entropy: Any, marginal_entropy_sum: Any) -> ExchangeTheory:
    """:class:`ExchangeTheory` from H(X) and sum_i H(X_i): bits, or objects with ``.bits``."""
    h = as_bits(joint_entropy, "joint_entropy")
    s = as_bits(marginal_entropy_sum, "marginal_entropy_sum")
    if h <= 0:
        raise ValueError(f"H(X) must be positive bits, got {h}")
    # Subadditivity: a violation means the two numbers are in different units or per different things.
    if s < h * (1 - 1e-9):
        raise ValueError(
            f"sum_i H(X_i) = {s:.6g} bits < H(X) = {h:.6g} bits violates subadditivity: check units (bits, "
            "per sample)"
        )
    return ExchangeTheory(h, s)


def exchange_rate(joint_entropy: Any, marginal_entropy_sum: Any) -> float:
    """Average bits of distortion per bit of rate, sum_i H(X_i) / H(X)."""
    return exchange_theory(joint_entropy, marginal_entropy_sum).price


def local_slopes(rates_bits: Iterable[float], distortions_bits: Iterable[float]) -> list[float]:
    """-dD/dR between consecutive points (bits per bit = nats per nat = beta); points sorted by rate."""
    r, d = [float(x) for x in rates_bits], [float(x) for x in distortions_bits]
    if len(r) != len(d):
        raise ValueError(f"rates and distortions differ in length: {len(r)} vs {len(d)}")
    out = []
    for i in range(len(r) - 1):
        dr = r[i + 1] - r[i]
        if dr <= 0:
            raise ValueError(f"rates must be strictly increasing, got {r[i]} then {r[i + 1]}")
        out.append(-(d[i + 1] - d[i]) / dr)
    return out


@dataclass(frozen=True)
class Frontier:
    """Empirical rate-distortion frontier, bits per sample, sorted by rising rate."""

    rate_bits: tuple[float, ...]
    distortion_bits: tuple[float, ...]
    labels: tuple[Any, ...]  # e.g. the beta each point was trained with; None when unknown

    @property
    def slopes(self) -> tuple[float, ...]:
        """-dD/dR of each segment, bits of distortion per bit of rate."""
        return tuple(local_slopes(self.rate_bits, self.distortion_bits))

    @property
    def betas(self) -> tuple[float, ...]:
        """The beta each segment corresponds to: an optimum of D + beta R sits where the slope is -beta."""
        return self.slopes

    @property
    def price(self) -> float:
        """Average exchange rate over the measured range, bits of distortion per bit of rate."""
        if len(self.rate_bits) < 2:
            raise ValueError("a frontier of one point has no slope")
        return (self.distortion_bits[0] - self.distortion_bits[-1]) / (self.rate_bits[-1] - self.rate_bits[0])

    def slope_at(self, rate_bits: float) -> float:
        """Slope of the segment containing ``rate_bits`` (end segments extend outwards)."""
        if len(self.rate_bits) < 2:
            raise ValueError("a frontier of one point has no slope")
        i = bisect.bisect_right(self.rate_bits, float(rate_bits)) - 1
        return self.slopes[min(max(i, 0), len(self.rate_bits) - 2)]

    def beta_range(self, i: int) -> tuple[float, float]:
        """Betas for which point ``i`` is the best of the frontier for D + beta R: (low, high)."""
        s = self.slopes
        low = s[i] if i < len(s) else 0.0
        high = s[i - 1] if i > 0 else math.inf
        return (low, high)

    def table(self) -> str:
        """Markdown: each point, its label, and the betas that select it."""
        lines = ["| R (bits) | D (bits) | label | beta range | slope to next |", "|---|---|---|---|---|"]
        s = self.slopes
        for i, (r, d, lab) in enumerate(zip(self.rate_bits, self.distortion_bits, self.labels)):
            lo, hi = self.beta_range(i)
            nxt = f"{s[i]:.4g}" if i < len(s) else ""
            lines.append(
                f"| {r:.4g} | {d:.4g} | {'' if lab is None else lab} | [{lo:.4g}, {hi:.4g}] | {nxt} |"
            )
        return "\n".join(lines)


def _point(item: Any, unit: str) -> tuple[float, float]:
    if isinstance(item, (tuple, list)) and len(item) == 2:
        scale = {"bits": 1.0, "nats": BITS_PER_NAT}[unit]
        return float(item[0]) * scale, float(item[1]) * scale
    obs = observe(item)
    return obs.rate_bits, obs.distortion_bits


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def empirical_frontier(
    points: Any, *, unit: str = "bits", labels: Optional[Iterable[Any]] = None, hull: bool = True
) -> Frontier:
    """Frontier of a set of (R, D) points.

    - ``points``: an iterable of ``(rate, distortion)`` pairs in ``unit`` (``"bits"`` or
      ``"nats"``, per sample), :class:`ELBOTerms`, meters or scalars dicts; or a mapping
      ``{label: point}`` (e.g. ``{beta: meter}`` from a sweep), whose keys become labels.
    - ``hull=True``: the lower convex hull (points some beta would choose, slopes
      falling with rate); ``False``: every Pareto-optimal point (slopes may wiggle).
    """
    if unit not in ("bits", "nats"):
        raise ValueError(f"unit must be 'bits' or 'nats', got {unit!r}")
    if isinstance(points, Mapping):
        labs, items = list(points.keys()), list(points.values())
    else:
        items = list(points)
        labs = list(labels) if labels is not None else [None] * len(items)
    if len(labs) != len(items):
        raise ValueError(f"{len(labs)} labels for {len(items)} points")
    pts = [(*_point(it, unit), lab) for it, lab in zip(items, labs)]
    if not pts:
        raise ValueError("no points")
    for r, d, _ in pts:
        if not (math.isfinite(r) and math.isfinite(d)):
            raise ValueError(f"points must be finite, got R={r} D={d}")
    pts.sort(key=lambda p: (p[0], p[1]))
    # Pareto: walking up in rate, keep a point only if it lowers the distortion.
    pareto: list[tuple[float, float, Any]] = []
    for p in pts:
        if not pareto or p[1] < pareto[-1][1]:
            pareto.append(p)
    chain = pareto
    if hull:
        # Monotone-chain lower hull; on Pareto points it is also non-increasing.
        chain = []
        for p in pareto:
            while len(chain) >= 2 and _cross(chain[-2][:2], chain[-1][:2], p[:2]) <= 0:
                chain.pop()
            chain.append(p)
    return Frontier(
        tuple(p[0] for p in chain),
        tuple(p[1] for p in chain),
        tuple(p[2] for p in chain),
    )
