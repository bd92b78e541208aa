"""Unit audit: which beta does a weighting ``w_recon * L_recon + w_kl * L_kl`` really apply?

A VAE's ELBO weighs the two per-sample codelengths equally: D + R, both summed over
their dimensions, in nats. Code that averages the reconstruction over pixels (torch's
default ``reduction="mean"``) while summing the KL over latents silently rescales one
term. :func:`effective_beta` undoes the reductions and reports the beta of
``D + beta * R`` that the weights amount to; :func:`audit` fills in the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from ..terms import ELBOTerms
from ..units import BITS_PER_NAT
from ._observe import observe

REDUCTIONS = ("sum", "mean")
RECON_KINDS = ("nll", "mse")


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _positive(name: str, value: Optional[float], why: str) -> float:
    if value is None:
        raise ValueError(f"{name} is required when {why}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive count, got {value}")
    return float(value)


def _scales(
    recon_reduction: str,
    dims: Optional[float],
    kl_reduction: str,
    z_dim: Optional[float],
    recon_kind: str,
    sigma: Optional[float],
    recon_batch: str,
    kl_batch: str,
    batch_size: Optional[float],
) -> tuple[float, float]:
    """Factors turning a per-sample sum (nats) into the value the user's code computed."""
    _check("recon_reduction", recon_reduction, REDUCTIONS)
    _check("kl_reduction", kl_reduction, REDUCTIONS)
    _check("recon_kind", recon_kind, RECON_KINDS)
    _check("recon_batch", recon_batch, REDUCTIONS)
    _check("kl_batch", kl_batch, REDUCTIONS)
    a = 1.0 if recon_reduction == "sum" else 1.0 / _positive("dims", dims, "recon_reduction='mean'")
    b = 1.0 if kl_reduction == "sum" else 1.0 / _positive("z_dim", z_dim, "kl_reduction='mean'")
    if recon_kind == "mse":
        # Gaussian NLL = SSE / (2 sigma^2) + const, so one nat of NLL is 2 sigma^2 of SSE.
        # With no sigma, sigma^2 = 1/2 is the variance for which SSE *is* the NLL (up to a constant).
        s = 0.5**0.5 if sigma is None else sigma
        if not (s > 0 and math.isfinite(s)):
            raise ValueError(f"sigma must be a positive decoder std, got {s}")
        a *= 2.0 * s * s
    if recon_batch != kl_batch:
        n = _positive("batch_size", batch_size, "recon_batch and kl_batch differ")
        # Only the ratio matters: a batch sum is n times a batch mean.
        if recon_batch == "sum":
            a *= n
        else:
            b *= n
    return a, b


def effective_beta(
    w_recon: float,
    w_kl: float,
    recon_reduction: str = "mean",
    dims: Optional[float] = None,
    kl_reduction: str = "sum",
    z_dim: Optional[float] = None,
    *,
    recon_kind: str = "nll",
    sigma: Optional[float] = None,
    recon_batch: str = "mean",
    kl_batch: str = "mean",
    batch_size: Optional[float] = None,
) -> float:
    """The beta of ``D + beta * R`` (nats per nat) that ``w_recon * L_recon + w_kl * L_kl`` applies.

    - ``recon_reduction``: ``"mean"`` if the reconstruction was averaged over the
      ``dims`` observed dimensions of a sample (torch's default), ``"sum"`` if summed.
    - ``kl_reduction``: ``"sum"`` over the ``z_dim`` latents, or ``"mean"``.
    - ``recon_kind="mse"``: the reconstruction is a squared error, read as a Gaussian
      NLL with std ``sigma`` (default sqrt(1/2), where sum-SSE equals the NLL + const).
    - ``recon_batch``/``kl_batch``: how each term was reduced over the batch; they
      only matter when they differ (then ``batch_size`` is needed).

    Example: reconstruction averaged over 64x64 pixels, KL summed, weights (0.8, 0.2):
    ``effective_beta(0.8, 0.2, "mean", dims=4096)`` = 0.25 x 4096 = 1024.
    """
    a, b = _scales(
        recon_reduction, dims, kl_reduction, z_dim, recon_kind, sigma, recon_batch, kl_batch, batch_size
    )
    w_recon, w_kl = float(w_recon), float(w_kl)
    if not (w_recon > 0 and math.isfinite(w_recon)):
        raise ValueError(f"w_recon must be positive (the reconstruction must count), got {w_recon}")
    if not (w_kl >= 0 and math.isfinite(w_kl)):
        raise ValueError(f"w_kl must be >= 0, got {w_kl}")
    return (w_kl * b) / (w_recon * a)


def _fmt(x: Optional[float]) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:.4e}"


@dataclass(frozen=True)
class Audit:
    """The seed's table for one batch, filled in. All ``*_nats`` are batch means per sample."""

    w_recon: float
    w_kl: float
    recon_reduction: str
    kl_reduction: str
    recon_kind: str
    recon_batch: str
    kl_batch: str
    dims: Optional[float]
    z_dim: Optional[float]
    recon_nats: Optional[float]  # actual D as a codelength (None for MSE without sigma)
    kl_nats: float  # actual R
    recon_as_computed: float  # what the user's code computed for L_recon
    kl_as_computed: float  # what the user's code computed for L_kl
    beta: float  # effective beta, nats of reconstruction per nat of KL
    scale: float  # for an NLL: reported loss = scale * (D + beta * R)
    issues: tuple[str, ...]

    @property
    def recon_weighted(self) -> float:
        return self.w_recon * self.recon_as_computed

    @property
    def kl_weighted(self) -> float:
        return self.w_kl * self.kl_as_computed

    @property
    def loss(self) -> float:
        """The loss value the user's code reports."""
        return self.recon_weighted + self.kl_weighted

    @property
    def kl_share(self) -> float:
        """Fraction of the reported loss that is KL."""
        return self.kl_weighted / self.loss if self.loss else float("nan")

    @property
    def verdict(self) -> str:
        """Plain-language verdict: what the weights really do."""
        b = self.beta
        if abs(b - 1.0) <= 1e-9:
            regime = "this is the ELBO (beta = 1)."
        elif b > 1.0:
            regime = (
                f"the KL counts {b:.4g}x as much as in the ELBO (a beta-VAE with beta = {b:.4g}); "
                "each nat of rate must buy more than one nat of reconstruction, so expect a low rate"
                + (" and likely posterior collapse." if b >= 100 else ".")
            )
        else:
            regime = (
                f"the KL counts {b:.4g}x as much as in the ELBO (beta = {b:.4g} < 1): "
                "rate is cheap, expect a high rate and a loose ELBO."
            )
        head = "Units do not match. " + " ".join(self.issues) + " " if self.issues else "Units match. "
        return f"{head}Effective beta = {b:.4g}: {regime}"

    def rows(self) -> list[dict[str, Any]]:
        """The table as records (for logging): per term, nats and bits."""
        r_bits = None if self.recon_nats is None else self.recon_nats * BITS_PER_NAT
        return [
            {
                "term": "recon",
                "weight": self.w_recon,
                "actual_nats": self.recon_nats,
                "actual_bits": r_bits,
                "as_computed": self.recon_as_computed,
                "weighted": self.recon_weighted,
                "weighted_bits": None if self.recon_kind == "mse" else self.recon_weighted * BITS_PER_NAT,
            },
            {
                "term": "kl",
                "weight": self.w_kl,
                "actual_nats": self.kl_nats,
                "actual_bits": self.kl_nats * BITS_PER_NAT,
                "as_computed": self.kl_as_computed,
                "weighted": self.kl_weighted,
                "weighted_bits": self.kl_weighted * BITS_PER_NAT,
            },
        ]

    def table(self) -> str:
        """Markdown table: weights, actual and weighted L_recon and L_kl, nats and bits."""
        r_unit = {"mean": "nats/dim", "sum": "nats/sample"}[self.recon_reduction]
        if self.recon_kind == "mse":
            r_unit = {"mean": "SSE/dim", "sum": "SSE/sample"}[self.recon_reduction]
        k_unit = {"mean": "nats/latent", "sum": "nats/sample"}[self.kl_reduction]
        # A batch sum multiplies the per-sample figure by the batch size.
        r_unit += " (batch sum)" if self.recon_batch == "sum" else ""
        k_unit += " (batch sum)" if self.kl_batch == "sum" else ""
        lines = [
            "| term | weight | actual (nats/sample) | actual (bits/sample) | as computed | weighted | weighted (bits) |",
            "|---|---|---|---|---|---|---|",
        ]
        units = {"recon": r_unit, "kl": k_unit}
        for row in self.rows():
            lines.append(
                f"| {row['term']} | {_fmt(row['weight'])} | {_fmt(row['actual_nats'])} | "
                f"{_fmt(row['actual_bits'])} | {_fmt(row['as_computed'])} {units[row['term']]} | "
                f"{_fmt(row['weighted'])} | {_fmt(row['weighted_bits'])} |"
            )
        lines.append(f"| total | | | | | {_fmt(self.loss)} | |")
        return "\n".join(lines)

    def __str__(self) -> str:
        out = f"{self.table()}\n\neffective beta = {_fmt(self.beta)} nats/nat (ELBO: 1)\n"
        if self.recon_kind == "nll":
            out += f"reported loss = {_fmt(self.scale)} x (D + {_fmt(self.beta)} R), D and R in nats per sample\n"
        return out + self.verdict


def audit(
    terms: Any,
    w_recon: float,
    w_kl: float,
    recon_reduction: str = "mean",
    kl_reduction: str = "sum",
    *,
    dims: Optional[float] = None,
    z_dim: Optional[float] = None,
    recon_kind: str = "nll",
    sigma: Optional[float] = None,
    recon_batch: str = "mean",
    kl_batch: str = "mean",
    batch_size: Optional[float] = None,
) -> Audit:
    """Audit a weighting on one batch: ``terms`` is :class:`ELBOTerms`, a meter or a scalars dict.

    ``dims``/``z_dim``/``batch_size`` default to what ``terms`` knows. With
    ``recon_kind="mse"``, ``terms.recon`` holds each sample's sum of squared errors
    (not nats); it becomes a codelength only once ``sigma`` is given.
    """
    if isinstance(terms, ELBOTerms):
        z_dim = z_dim if z_dim is not None else terms.kl.shape[1]
        batch_size = batch_size if batch_size is not None else terms.recon.shape[0]
    obs = observe(terms)
    dims = dims if dims is not None else obs.dims
    beta = effective_beta(
        w_recon, w_kl, recon_reduction, dims, kl_reduction, z_dim,
        recon_kind=recon_kind, sigma=sigma, recon_batch=recon_batch, kl_batch=kl_batch, batch_size=batch_size,
    )  # fmt: skip
    # The "as computed" values: a per-sample sum divided back by the user's reduction.
    a = 1.0 if recon_reduction == "sum" else 1.0 / float(dims or 1)
    b = 1.0 if kl_reduction == "sum" else 1.0 / float(z_dim or 1)
    a *= float(batch_size or 1) if recon_batch == "sum" else 1.0
    b *= float(batch_size or 1) if kl_batch == "sum" else 1.0
    recon_raw = obs.distortion_nats  # nats, or SSE for MSE
    issues: list[str] = []
    recon_nats: Optional[float] = recon_raw
    if recon_kind == "mse":
        if sigma is None:
            recon_nats = None
            issues.append(
                "The reconstruction is an MSE, which is no codelength: it becomes nats only under a Gaussian "
                "decoder with a chosen std sigma, and beta depends on that choice. Read here with "
                "sigma^2 = 1/2 (where summed SSE equals the NLL up to a constant); pass sigma= to fix it."
            )
        else:
            recon_nats = recon_raw / (2.0 * sigma * sigma) + 0.5 * float(dims or 0) * math.log(
                2 * math.pi * sigma**2
            )
            issues.append(
                f"The reconstruction is an MSE; read as a Gaussian NLL with sigma = {sigma:.4g}, "
                "one nat of reconstruction is 2 sigma^2 of squared error."
            )
    if recon_reduction != kl_reduction or (recon_reduction == "mean" and (dims or 1) != (z_dim or 1)):
        what_r = f"averaged over {_fmt(dims)} dims" if recon_reduction == "mean" else "summed over the sample"
        what_k = (
            f"averaged over {_fmt(z_dim)} latents" if kl_reduction == "mean" else "summed over the latents"
        )
        issues.append(
            f"The reconstruction is {what_r} while the KL is {what_k}, so the weights "
            f"({w_recon:g}, {w_kl:g}) do not mean beta = {w_kl / w_recon:.4g} but {beta:.4g}."
        )
    if recon_batch != kl_batch:
        issues.append(
            f"The reconstruction is a batch {recon_batch} and the KL a batch {kl_batch}, "
            f"a further factor of the batch size ({_fmt(batch_size)})."
        )
    return Audit(
        w_recon=float(w_recon),
        w_kl=float(w_kl),
        recon_reduction=recon_reduction,
        kl_reduction=kl_reduction,
        recon_kind=recon_kind,
        recon_batch=recon_batch,
        kl_batch=kl_batch,
        dims=dims,
        z_dim=z_dim,
        recon_nats=recon_nats,
        kl_nats=obs.rate_nats,
        recon_as_computed=recon_raw * a,
        kl_as_computed=obs.rate_nats * b,
        beta=beta,
        scale=float(w_recon) * a,
        issues=tuple(issues),
    )
