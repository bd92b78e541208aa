"""What a VAE loss weighs, in the ELBO's units: :class:`Weighting` and its :meth:`~Weighting.betas`.

A :class:`Weighting` describes a loss of the form

    w_recon * L_recon + w_kl * K + sum_p w_p * part_p,   K = L_kl, or |L_kl - C| with a capacity C,

with each term reduced the way the user's code reduced it (over a sample's dimensions, over the
latents, over the batch). The parts are the three pieces of the KL that beta-TCVAE and FactorVAE weigh
on their own: ``mi`` (index-code mutual information), ``tc`` (total correlation) and ``dwkl``
(dimension-wise KL), in nats per sample, with KL = mi + tc + dwkl. :meth:`Weighting.betas` turns the
weights into nats of reconstruction NLL per nat of each KL piece: the beta of ``D + beta * R``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional, Union

from ..errors import InputError
from .continuous import (
    DEFAULT_SCALES,
    RECON_KINDS,
    SCALE_NAMES,
    check_scale,
    ml_laplace_scale,
    ml_sigma,
    raw_per_nat,
)

REDUCTIONS = ("sum", "mean")
KL_PARTS = ("mi", "tc", "dwkl")


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InputError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def check_weight(name: str, value: Any, positive: bool = False) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(w) or (positive and w <= 0):
        need = "positive (the reconstruction must count)" if positive else "a finite number"
        raise InputError(f"{name} must be {need}, got {value!r}")
    return w


def check_count(name: str, value: Any, why: str) -> float:
    if value is None:
        raise InputError(f"{name} is required when {why}")
    try:
        n = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive count, got {value!r}") from None
    if isinstance(value, bool) or not (n > 0 and math.isfinite(n)):
        raise InputError(f"{name} must be a positive count, got {value!r}")
    return n


class Betas(NamedTuple):
    """Nats of reconstruction NLL per nat of each KL piece (the beta of ``D + beta * R``; ELBO: 1).

    - ``kl``: the weight on the whole KL; with a capacity, the weight while R is above C (below C it
      is ``-kl``: the loss then rewards rate).
    - ``parts``: ``{"mi", "tc", "dwkl"}`` -> total weight of each KL part (``kl`` plus its own weight);
      empty when the loss has no part terms.
    - ``scale``: the decoder scale the figures are read at (sigma for MSE, b for L1; None for an NLL).
    - ``implied_scale``: for MSE/L1, the scale at which these weights are the ELBO (beta = 1), when
      there is one beta.
    """

    kl: float
    parts: dict[str, float]
    scale: Optional[float]
    implied_scale: Optional[float]

    @property
    def single(self) -> float:
        """The one beta the loss applies to the whole KL, or NaN when its parts are weighed apart."""
        if not self.parts:
            return self.kl
        vals = list(self.parts.values())
        return (
            vals[0]
            if all(math.isclose(v, vals[0], rel_tol=1e-12, abs_tol=1e-300) for v in vals)
            else math.nan
        )


@dataclass(frozen=True)
class Weighting:
    """A loss ``w_recon * L_recon + w_kl * K + sum_p w_p * part_p`` as the user's code computes it.

    - ``recon_reduction``: ``"sum"`` or ``"mean"`` over a sample's dims (required: no default guesses
      torch's mean for code that sums). ``kl_reduction``: over the latents.
    - ``recon_kind``: ``"nll"`` (a negative log-likelihood in nats, e.g. BCE), ``"mse"`` (squared
      error: a Gaussian NLL up to its std sigma) or ``"l1"`` (absolute error: a Laplace NLL up to b).
    - ``recon_batch``/``kl_batch``: each term's reduction over the batch.
    - ``capacity``: C, in the units of L_kl as computed (nats per sample for a summed KL); then
      K = |L_kl - C|, on the batch's L_kl, or on each sample's KL when ``capacity_per_sample``.
    - ``parts``: weights on the KL parts ``mi``, ``tc``, ``dwkl`` (nats per sample, batch means).
    - ``name``, ``formula``, ``notes``: where the weighting comes from and what was assumed (presets).
    """

    w_recon: float
    w_kl: float
    recon_reduction: str
    kl_reduction: str = "sum"
    recon_kind: str = "nll"
    recon_batch: str = "mean"
    kl_batch: str = "mean"
    capacity: Optional[float] = None
    capacity_per_sample: bool = False
    parts: Union[Mapping[str, float], tuple[tuple[str, float], ...]] = field(default=())
    name: str = ""
    formula: str = ""
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "w_recon", check_weight("w_recon", self.w_recon, positive=True))
        set_(self, "w_kl", check_weight("w_kl", self.w_kl))
        if self.recon_reduction is None:
            raise InputError(
                "recon_reduction is required: 'sum' if the reconstruction is summed over each sample's "
                "dims (pythae, disentangling-vae), 'mean' if averaged (torch's default, PyTorch-VAE); "
                "or pass reported_loss= to audit() to infer it"
            )
        check_choice("recon_reduction", self.recon_reduction, REDUCTIONS)
        check_choice("kl_reduction", self.kl_reduction, REDUCTIONS)
        check_choice("recon_kind", self.recon_kind, RECON_KINDS)
        check_choice("recon_batch", self.recon_batch, REDUCTIONS)
        check_choice("kl_batch", self.kl_batch, REDUCTIONS)
        if self.capacity is not None:
            c = check_weight("capacity", self.capacity)
            if c < 0:
                raise InputError(f"capacity must be >= 0 (a KL target), got {self.capacity!r}")
            set_(self, "capacity", c)
        elif self.capacity_per_sample:
            raise InputError("capacity_per_sample=True needs a capacity")
        items = self.parts.items() if isinstance(self.parts, Mapping) else self.parts
        parts = []
        for k, w in items:
            check_choice("a KL part", k, KL_PARTS)
            parts.append((k, check_weight(f"parts[{k!r}]", w)))
        if len({k for k, _ in parts}) != len(parts):
            raise InputError(f"parts names a KL part twice: {[k for k, _ in parts]}")
        set_(self, "parts", tuple(parts))
        set_(self, "notes", tuple(self.notes))

    @property
    def part_weights(self) -> dict[str, float]:
        """``{part: w_p}`` as given (without the whole-KL weight)."""
        return dict(self.parts)  # type: ignore[arg-type]

    def factors(
        self, dims: Optional[float], z_dim: Optional[float], batch_size: Optional[float], exact: bool = False
    ) -> tuple[float, float, float]:
        """Factors from per-sample sums (batch means) to the terms as computed: recon, KL, parts.

        Only their ratios matter for a beta, so equal batch reductions need no ``batch_size``;
        ``exact=True`` (for the computed values themselves) asks for every factor.
        """
        a = (
            1.0
            if self.recon_reduction == "sum"
            else 1.0 / check_count("dims", dims, "recon_reduction='mean'")
        )
        b = 1.0 if self.kl_reduction == "sum" else 1.0 / check_count("z_dim", z_dim, "kl_reduction='mean'")
        p = 1.0
        if exact or self.recon_batch != self.kl_batch:
            why = "a term is summed over the batch" if exact else "recon_batch and kl_batch differ"
            if self.recon_batch == "sum":
                a *= check_count("batch_size", batch_size, why)
            if self.kl_batch == "sum":
                n = check_count("batch_size", batch_size, why)
                b *= n
                p *= n
        return a, b, p

    def scale_arg(self, sigma: Any, b: Any) -> Any:
        """The one of ``sigma`` (MSE) and ``b`` (L1) that applies to this reconstruction; the other
        must be None (both, for an NLL)."""
        applies = {"nll": None, "mse": "sigma", "l1": "b"}[self.recon_kind]
        for name, v in (("sigma", sigma), ("b", b)):
            if v is not None and name != applies:
                raise InputError(
                    f"{name}= does not apply to recon_kind {self.recon_kind!r} (sigma: 'mse', b: 'l1')"
                )
        return sigma if applies == "sigma" else b if applies == "b" else None

    def resolve_scale(
        self, scale: Any = None, *, mse: Any = None, mae: Any = None, mean_error: Optional[float] = None
    ) -> tuple[Optional[float], str]:
        """The decoder scale to read an MSE/L1 at, and where it came from: ``"given"``, ``"ml"``
        (from ``mse``/``mae``, a ``(recon, target)`` pair, or ``mean_error`` per subpixel) or
        ``"default"``."""
        kind = self.recon_kind
        if (mse is not None or mae is not None) and not (isinstance(scale, str) and scale == "ml"):
            raise InputError(
                "mse=/mae= are for the maximum-likelihood scale: pass them with sigma='ml' / b='ml'"
            )
        if kind == "nll":
            return None, ""
        if scale is None:
            return DEFAULT_SCALES[kind], "default"
        if isinstance(scale, str):
            if scale != "ml":
                raise InputError(f"{SCALE_NAMES[kind]} must be a positive number or 'ml', got {scale!r}")
            value = mse if kind == "mse" else mae
            fn = ml_sigma if kind == "mse" else ml_laplace_scale
            if isinstance(value, (tuple, list)) and len(value) == 2:
                return fn(recon=value[0], target=value[1]), "ml"
            return fn(value if value is not None else mean_error), "ml"
        return check_scale(kind, scale), "given"

    def betas(
        self,
        dims: Optional[float] = None,
        z_dim: Optional[float] = None,
        *,
        batch_size: Optional[float] = None,
        sigma: Any = None,
        b: Any = None,
        mse: Any = None,
        mae: Any = None,
    ) -> Betas:
        """Nats of reconstruction per nat of each KL piece (see :class:`Betas`).

        For ``recon_kind="mse"``: ``sigma`` (the decoder std, data units), ``"ml"`` with ``mse=`` (the MSE
        per subpixel, or a ``(recon, target)`` pair), or None for sqrt(1/2). For ``"l1"``: ``b`` likewise
        with ``mae=``, None for 1.
        """
        scale, _ = self.resolve_scale(self.scale_arg(sigma, b), mse=mse, mae=mae)
        return self._betas(dims, z_dim, batch_size, scale)

    def _betas(
        self,
        dims: Optional[float],
        z_dim: Optional[float],
        batch_size: Optional[float],
        scale: Optional[float],
    ) -> Betas:
        a, k, p = self.factors(dims, z_dim, batch_size)
        unit = self.w_recon * a * raw_per_nat(self.recon_kind, scale)  # loss per nat of D
        kl = self.w_kl * k / unit
        pw = self.part_weights
        parts = {name: kl + pw.get(name, 0.0) * p / unit for name in KL_PARTS} if pw else {}
        res = Betas(kl, parts, scale, None)
        one = abs(res.single)
        implied = None
        if scale is not None and one > 0 and math.isfinite(one):
            # beta is proportional to 1 / (2 sigma^2) (MSE) or 1 / b (L1): rescale to beta = 1.
            implied = scale * math.sqrt(one) if self.recon_kind == "mse" else scale * one
        return res._replace(implied_scale=implied)
