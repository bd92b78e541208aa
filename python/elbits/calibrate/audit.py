"""Unit audit: which beta does a VAE loss really apply?

A VAE's ELBO weighs the two per-sample codelengths equally: D + R, both summed over their
dimensions, in nats. Code that averages the reconstruction over pixels (torch's default
``reduction="mean"``) while summing the KL over latents silently rescales one term; an MSE or L1
reconstruction is a codelength only once a decoder scale is chosen. :func:`effective_beta` undoes the
reductions and reports the beta of ``D + beta * R`` that the weights amount to; :func:`audit` fills in
the table for a batch, for plain weights or a :class:`~elbits.calibrate.Weighting` (see
:mod:`elbits.calibrate.presets` for the losses of pythae, disentangling-vae and PyTorch-VAE).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Optional, Union

import torch

from ..errors import InputError
from ..terms import ELBOTerms
from ..units import BITS_PER_NAT
from ._observe import Observation, observe
from .continuous import SCALE_NAMES, nll_nats, raw_per_nat
from .weighting import KL_PARTS, REDUCTIONS, Betas, Weighting, check_weight

# A reported loss matches a reading of the weights when within this relative difference: float32
# client code agrees with the float64 terms to ~1e-6, while readings differ by factors (dims, z_dim,
# batch size) unless the term they disagree on is under 0.1% of the loss (then they are ambiguous).
LOSS_RTOL = 1e-3


def effective_beta(
    w_recon: float,
    w_kl: float,
    recon_reduction: Optional[str] = None,
    dims: Optional[float] = None,
    kl_reduction: str = "sum",
    z_dim: Optional[float] = None,
    *,
    recon_kind: str = "nll",
    sigma: Any = None,
    b: Any = None,
    mse: Any = None,
    mae: Any = None,
    recon_batch: str = "mean",
    kl_batch: str = "mean",
    batch_size: Optional[float] = None,
) -> float:
    """The beta of ``D + beta * R`` (nats per nat) that ``w_recon * L_recon + w_kl * L_kl`` applies.

    - ``recon_reduction`` (required): ``"mean"`` if the reconstruction was averaged over the ``dims``
      observed dimensions of a sample (torch's default), ``"sum"`` if summed (pythae,
      disentangling-vae).
    - ``kl_reduction``: ``"sum"`` over the ``z_dim`` latents, or ``"mean"``.
    - ``recon_kind="mse"``: a squared error, read as a Gaussian NLL with std ``sigma`` (data units;
      ``"ml"`` with ``mse=`` the MSE per subpixel or a ``(recon, target)`` pair; default sqrt(1/2),
      where summed SSE equals the NLL + const). ``"l1"``: an absolute error, a Laplace NLL with scale
      ``b`` (``"ml"`` with ``mae=``; default 1).
    - ``recon_batch``/``kl_batch``: how each term was reduced over the batch; they only matter when
      they differ (then ``batch_size`` is needed).

    Example: BCE averaged over 64x64 pixels, KL summed, weights (0.8, 0.2):
    ``effective_beta(0.8, 0.2, "mean", dims=4096)`` = 0.25 x 4096 = 1024.
    """
    w = Weighting(
        w_recon,
        w_kl,
        recon_reduction,  # type: ignore[arg-type]  # None raises a one-line InputError
        kl_reduction,
        recon_kind,
        recon_batch,
        kl_batch,
    )
    return w.betas(dims, z_dim, batch_size=batch_size, sigma=sigma, b=b, mse=mse, mae=mae).kl


def _fmt(x: Optional[float]) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4g}" if abs(x) < 1e5 or not math.isfinite(x) else f"{x:.4e}"


def _regime(b: float) -> str:
    if abs(b - 1.0) <= 1e-9:
        return "this is the ELBO (beta = 1)."
    if b > 1.0:
        return (
            f"the KL counts {b:.4g}x as much as in the ELBO (a beta-VAE with beta = {b:.4g}); "
            "each nat of rate must buy more than one nat of reconstruction, so expect a low rate"
            + (" and likely posterior collapse." if b >= 100 else ".")
        )
    if b >= 0.0:
        return (
            f"the KL counts {b:.4g}x as much as in the ELBO (beta = {b:.4g} < 1): "
            "rate is cheap, expect a high rate and a loose ELBO."
        )
    return "the loss rewards rate, pushing R up."


_KIND_WORDS = {"mse": ("an MSE", "a Gaussian"), "l1": ("an L1 error", "a Laplace")}


@dataclass(frozen=True)
class Audit:
    """The table for one batch, filled in. All ``*_nats`` are batch means per sample.

    ``beta`` is nats of reconstruction per nat of KL; with a capacity, the batch's signed value (the
    mean over samples for a per-sample capacity); NaN when the KL's parts are weighed apart (then
    ``part_betas`` has one per part).
    """

    w_recon: float
    w_kl: float
    recon_reduction: str
    kl_reduction: str
    recon_kind: str
    recon_batch: str
    kl_batch: str
    dims: Optional[float]
    z_dim: Optional[float]
    recon_nats: Optional[float]  # actual D as a codelength (None for an MSE/L1 read at the default scale)
    kl_nats: float  # actual R
    recon_as_computed: float  # what the user's code computed for L_recon
    kl_as_computed: float  # what the user's code computed for L_kl
    beta: float  # effective beta, nats of reconstruction per nat of KL
    scale: float  # reported loss = scale * (D + beta * R) (+ constants), per nat of D
    issues: tuple[str, ...]
    kl_weighted: float = math.nan  # w_kl * L_kl, or w_kl * |L_kl - C|
    parts_weighted: float = 0.0  # sum_p w_p * part_p as computed
    part_betas: dict[str, float] = field(default_factory=dict)
    part_nats: dict[str, float] = field(default_factory=dict)
    decoder_scale: Optional[float] = None  # sigma (MSE) or b (L1) the figures are read at
    scale_source: str = ""  # "given", "ml" or "default"
    implied_scale: Optional[float] = None  # the sigma / b at which the weights are the ELBO
    capacity: Optional[float] = None
    kl_weight: float = math.nan  # nats of D per nat of R on the whole KL, before a capacity's sign
    above_capacity: Optional[tuple[int, int]] = None  # samples (or the batch) above / below C
    reported_loss: Optional[float] = None
    notes: tuple[str, ...] = ()
    weighting: Optional[Weighting] = None

    @property
    def recon_weighted(self) -> float:
        return self.w_recon * self.recon_as_computed

    @property
    def loss(self) -> float:
        """The loss value the user's code reports, from these terms."""
        return self.recon_weighted + self.kl_weighted + self.parts_weighted

    @property
    def kl_share(self) -> float:
        """Fraction of the reported loss that is KL (its parts included)."""
        return (self.kl_weighted + self.parts_weighted) / self.loss if self.loss else float("nan")

    def _decoder_sentence(self) -> str:
        art, dist = _KIND_WORDS[self.recon_kind]
        name = SCALE_NAMES[self.recon_kind]
        out = f"The reconstruction is {art}, {dist} NLL only up to the decoder's scale {name}"
        if self.implied_scale is not None:
            out += f": these weights are the ELBO (beta = 1) for {name} = {self.implied_scale:.4g}"
        out += ". "
        if self.scale_source == "default":
            what = (
                "sigma^2 = 1/2 (where summed SSE" if self.recon_kind == "mse" else "b = 1 (where summed SAE"
            )
            out += (
                f"It is no codelength until {name} is chosen, and beta depends on that choice; read here at "
                f"{what} equals the NLL up to a constant): pass {name}= or {name}='ml'. "
            )
        elif self.scale_source == "ml":
            stat = "sigma^2 = MSE" if self.recon_kind == "mse" else "b = mean absolute error"
            out += (
                f"Read at the data's maximum-likelihood {name} = {self.decoder_scale:.4g} "
                f"({stat} per subpixel). "
            )
        else:
            out += f"Read at {name} = {self.decoder_scale:.4g}. "
        return out

    def _capacity_sentence(self) -> str:
        w = self.weighting
        if w is None or self.capacity is None or self.above_capacity is None:
            return ""
        g = abs(self.kl_weight)
        out = (
            f"The KL enters as {w.w_kl:g} |L_kl - C| with C = {self.capacity:.4g}: above C the rate is "
            f"pushed down with beta = +{g:.4g}, below C pulled up with beta = -{g:.4g}; "
        )
        up, down = self.above_capacity
        if w.capacity_per_sample:
            out += f"{up} of {up + down} samples are above C, so the batch's net beta is {self.beta:.4g}. "
        else:
            side = "above" if up else "below" if down else "at"
            out += f"this batch's L_kl = {self.kl_as_computed:.6g} is {side} C. "
        return out

    @property
    def verdict(self) -> str:
        """Plain-language verdict: what the weights really do."""
        head = "Units do not match. " + " ".join(self.issues) + " " if self.issues else ""
        if self.recon_kind == "nll":
            head = head or "Units match. "
        else:
            head += self._decoder_sentence()
        head += self._capacity_sentence()
        if self.part_betas:
            p = self.part_betas
            how = "weighed apart" if not math.isfinite(self.beta) else "weighed alike"
            head += (
                f"The KL's parts are {how}: MI x{p['mi']:.4g}, TC x{p['tc']:.4g}, "
                f"dimension-wise KL x{p['dwkl']:.4g} nats per nat (the ELBO weighs each 1). "
            )
        b = self.beta
        if self.capacity is not None and math.isfinite(b):
            # |R - C| prices no rate as such: at this weight it holds R at C.
            body = (
                f"Effective beta = {b:.4g} on this side of C: the term pins the rate to C = "
                f"{self.capacity:.4g} rather than pricing it, so expect R near C."
            )
        elif math.isfinite(b):
            body = f"Effective beta = {b:.4g}: {_regime(b)}"
        else:
            body = "No single effective beta: each part of the rate has its own price."
        tail = "".join(" " + n for n in self.notes)
        return f"{head}{body}{tail}"

    def rows(self) -> list[dict[str, Any]]:
        """The table as records (for logging): per term, nats and bits."""
        r_bits = None if self.recon_nats is None else self.recon_nats * BITS_PER_NAT
        out = [
            {
                "term": "recon",
                "weight": self.w_recon,
                "actual_nats": self.recon_nats,
                "actual_bits": r_bits,
                "as_computed": self.recon_as_computed,
                "weighted": self.recon_weighted,
                "weighted_bits": None if self.recon_kind != "nll" else self.recon_weighted * BITS_PER_NAT,
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
        weights = self.weighting.part_weights if self.weighting is not None else {}
        for name, w in weights.items():
            v = self.part_nats.get(name)
            out.append(
                {
                    "term": name,
                    "weight": w,
                    "actual_nats": v,
                    "actual_bits": None if v is None else v * BITS_PER_NAT,
                    "as_computed": v,
                    "weighted": None if v is None else w * v,
                    "weighted_bits": None if v is None else w * v * BITS_PER_NAT,
                }
            )
        return out

    def table(self) -> str:
        """Markdown table: weights, actual and weighted terms, nats and bits."""
        raw = {"nll": "nats", "mse": "SSE", "l1": "SAE"}[self.recon_kind]
        r_unit = {"mean": f"{raw}/dim", "sum": f"{raw}/sample"}[self.recon_reduction]
        k_unit = {"mean": "nats/latent", "sum": "nats/sample"}[self.kl_reduction]
        # A batch sum multiplies the per-sample figure by the batch size.
        r_unit += " (batch sum)" if self.recon_batch == "sum" else ""
        k_unit += " (batch sum)" if self.kl_batch == "sum" else ""
        lines = [
            "| term | weight | actual (nats/sample) | actual (bits/sample) | as computed | weighted "
            "| weighted (bits) |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in self.rows():
            unit = {"recon": r_unit, "kl": k_unit}.get(row["term"], "nats/sample")
            if row["term"] == "kl" and self.capacity is not None:
                unit += f" (weighted: \\|L_kl - {_fmt(self.capacity)}\\|)"
            lines.append(
                f"| {row['term']} | {_fmt(row['weight'])} | {_fmt(row['actual_nats'])} | "
                f"{_fmt(row['actual_bits'])} | {_fmt(row['as_computed'])} {unit} | "
                f"{_fmt(row['weighted'])} | {_fmt(row['weighted_bits'])} |"
            )
        lines.append(f"| total | | | | | {_fmt(self.loss)} | |")
        return "\n".join(lines)

    def __str__(self) -> str:
        out = f"{self.table()}\n\n"
        if self.part_betas:
            p = ", ".join(f"{k} {_fmt(v)}" for k, v in self.part_betas.items())
            out += f"effective beta per KL part: {p} nats/nat (ELBO: 1 each)\n"
        else:
            out += f"effective beta = {_fmt(self.beta)} nats/nat (ELBO: 1)\n"
        if self.recon_kind == "nll" and self.capacity is None and not self.part_betas:
            out += (
                f"reported loss = {_fmt(self.scale)} x (D + {_fmt(self.beta)} R), "
                "D and R in nats per sample\n"
            )
        return out + self.verdict


class _Source(NamedTuple):
    obs: Observation
    dims: Optional[float]
    z_dim: Optional[float]
    batch_size: Optional[float]
    kl_per_sample: Optional[torch.Tensor]  # [B] nats, when the source is ELBOTerms


def _source(
    terms: Any, dims: Optional[float], z_dim: Optional[float], batch_size: Optional[float]
) -> _Source:
    kl_ps = None
    if isinstance(terms, ELBOTerms):
        z_dim = z_dim if z_dim is not None else terms.kl.shape[1]
        batch_size = batch_size if batch_size is not None else terms.recon.shape[0]
        kl_ps = terms.kl.detach().double().sum(dim=1).cpu()
    obs = observe(terms)
    return _Source(obs, dims if dims is not None else obs.dims, z_dim, batch_size, kl_ps)


def _part_values(kl_parts: Optional[Mapping[str, Any]]) -> dict[str, float]:
    if kl_parts is None:
        return {}
    if not isinstance(kl_parts, Mapping):
        raise InputError(
            f"kl_parts must be a mapping like {{'mi': ..., 'tc': ..., 'dwkl': ...}}, got {kl_parts!r}"
        )
    out = {}
    for k, v in kl_parts.items():
        if k not in KL_PARTS:
            raise InputError(f"kl_parts keys must be among {list(KL_PARTS)}, got {k!r}")
        out[k] = check_weight(f"kl_parts[{k!r}]", v)
    return out


def _evaluate(
    src: _Source, w: Weighting, sigma: Any, b: Any, parts: dict[str, float], reported: Optional[float]
) -> Audit:
    obs, dims, z_dim, n, _ = src
    kind = w.recon_kind
    arg = w.scale_arg(sigma, b)
    if parts and not w.parts:
        raise InputError("kl_parts= was given, but this weighting weighs no part of the KL")
    mean_error = None
    if isinstance(arg, str) and arg == "ml":
        if not dims:
            raise InputError(f"{SCALE_NAMES[kind]}='ml' needs the dims per sample of terms: pass dims=")
        mean_error = obs.distortion_nats / float(dims)  # MSE / MAE per subpixel
    scale, scale_src = w.resolve_scale(arg, mean_error=mean_error)
    betas: Betas = w._betas(dims, z_dim, n, scale)
    a, k, p = w.factors(dims, z_dim, n, exact=True)
    recon_raw = obs.distortion_nats  # nats, or SSE / SAE for MSE / L1
    recon_as = recon_raw * a
    kl_as = obs.rate_nats * k
    sign = 1.0
    kl_weighted = w.w_kl * kl_as
    above = None
    if w.capacity is not None:
        c = w.capacity
        if w.capacity_per_sample:
            if src.kl_per_sample is None:
                raise InputError(
                    "a per-sample capacity |KL_i - C| needs each sample's KL: pass ELBOTerms, not batch means"
                )
            zf = 1.0 if w.kl_reduction == "sum" else 1.0 / float(z_dim or 1)  # checked by factors()
            per = src.kl_per_sample * zf  # each sample's L_kl
            dev = (per - c).abs()
            kl_weighted = w.w_kl * float(dev.sum() if w.kl_batch == "sum" else dev.mean())
            s = torch.sign(per - c)
            above = (int((s > 0).sum()), int((s < 0).sum()))
            sign = float(s.mean())
        else:
            kl_weighted = w.w_kl * abs(kl_as - c)
            sign = float((kl_as > c) - (kl_as < c))
            above = (int(kl_as > c), int(kl_as < c))
    beta_kl = betas.kl * sign
    part_betas = {name: beta_kl + (v - betas.kl) for name, v in betas.parts.items()}
    if part_betas:
        vals = list(part_betas.values())
        beta = (
            vals[0]
            if all(math.isclose(x, vals[0], rel_tol=1e-12, abs_tol=1e-300) for x in vals)
            else math.nan
        )
    else:
        beta = beta_kl
    notes = list(w.notes)
    parts_weighted = 0.0
    missing = [name for name in w.part_weights if name not in parts]
    if missing:
        parts_weighted = math.nan
        notes.append(f"Pass kl_parts= with {missing} (nats per sample, batch means) to reproduce the loss.")
    else:
        parts_weighted = sum(wp * parts[name] * p for name, wp in w.part_weights.items())
    if all(name in parts for name in KL_PARTS):
        total = sum(parts[name] for name in KL_PARTS)
        notes.append(
            f"MI + TC + dwKL = {total:.6g} nats per sample, a sampled estimate of the analytic KL "
            f"R = {obs.rate_nats:.6g}."
        )
    recon_nats: Optional[float] = recon_raw
    if kind != "nll":
        recon_nats = None  # no codelength at the default scale: it is nobody's decoder
        if scale_src != "default" and dims and scale is not None:
            recon_nats = nll_nats(kind, recon_raw, scale, float(dims))
    issues: list[str] = []
    if kind == "nll":
        _reduction_issues(issues, w, dims, z_dim, n, betas.kl)
    audit_ = Audit(
        w_recon=w.w_recon,
        w_kl=w.w_kl,
        recon_reduction=w.recon_reduction,
        kl_reduction=w.kl_reduction,
        recon_kind=kind,
        recon_batch=w.recon_batch,
        kl_batch=w.kl_batch,
        dims=dims,
        z_dim=z_dim,
        recon_nats=recon_nats,
        kl_nats=obs.rate_nats,
        recon_as_computed=recon_as,
        kl_as_computed=kl_as,
        beta=beta,
        scale=w.w_recon * a * raw_per_nat(kind, scale),
        issues=tuple(issues),
        kl_weighted=kl_weighted,
        parts_weighted=parts_weighted,
        part_betas=part_betas,
        part_nats=dict(parts),
        decoder_scale=scale,
        scale_source=scale_src,
        implied_scale=betas.implied_scale,
        capacity=w.capacity,
        kl_weight=betas.kl,
        above_capacity=above,
        reported_loss=reported,
        notes=tuple(notes),
        weighting=w,
    )
    if reported is not None:
        audit_ = _check_reported(audit_, reported)
    return audit_


def _reduction_issues(
    issues: list[str],
    w: Weighting,
    dims: Optional[float],
    z_dim: Optional[float],
    n: Optional[float],
    beta: float,
) -> None:
    if w.recon_reduction != w.kl_reduction or (w.recon_reduction == "mean" and (dims or 1) != (z_dim or 1)):
        what_r = (
            f"averaged over {_fmt(dims)} dims" if w.recon_reduction == "mean" else "summed over the sample"
        )
        what_k = (
            f"averaged over {_fmt(z_dim)} latents" if w.kl_reduction == "mean" else "summed over the latents"
        )
        issues.append(
            f"The reconstruction is {what_r} while the KL is {what_k}, so the weights "
            f"({w.w_recon:g}, {w.w_kl:g}) do not mean beta = {w.w_kl / w.w_recon:.4g} but {beta:.4g}."
        )
    if w.recon_batch != w.kl_batch:
        issues.append(
            f"The reconstruction is a batch {w.recon_batch} and the KL a batch {w.kl_batch}, "
            f"a further factor of the batch size ({_fmt(n)})."
        )


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def _check_reported(a: Audit, reported: float) -> Audit:
    loss = a.loss
    if not math.isfinite(loss):
        return replace(
            a, notes=a.notes + (f"The reported loss {reported:.6g} cannot be checked without kl_parts.",)
        )
    rel = _rel(loss, reported)
    if rel <= LOSS_RTOL:
        note = (
            f"The reported loss {reported:.6g} is what these settings compute from the terms "
            f"({loss:.6g}, relative difference {rel:.1e})."
        )
        return replace(a, notes=a.notes + (note,))
    issue = (
        f"The reported loss {reported:.6g} is not what these settings compute from the terms ({loss:.6g}): "
        "the reductions, weights or batch differ from the code that reported it."
    )
    return replace(a, issues=a.issues + (issue,))


def _reading(w: Weighting) -> str:
    return (
        f"recon {w.recon_reduction} over dims, KL {w.kl_reduction} over latents, "
        f"batch {w.recon_batch}/{w.kl_batch}"
    )


def _infer(
    src: _Source,
    w_recon: float,
    w_kl: float,
    kl_reduction: Optional[str],
    recon_kind: str,
    recon_batch: Optional[str],
    kl_batch: Optional[str],
    sigma: Any,
    b: Any,
    parts: dict[str, float],
    reported: float,
) -> Audit:
    """The audit under the one reading of the reductions whose loss is the reported one."""
    kls = [kl_reduction] if kl_reduction is not None else list(REDUCTIONS)
    if recon_batch is not None or kl_batch is not None:
        batches = [(recon_batch or "mean", kl_batch or "mean")]
    else:
        batches = [("mean", "mean"), ("sum", "sum")]
    tried: list[tuple[Audit, float]] = []
    for rr in REDUCTIONS:
        for kr in kls:
            for rb, kb in batches:
                w = Weighting(w_recon, w_kl, rr, kr, recon_kind, rb, kb)
                try:
                    a = _evaluate(src, w, sigma, b, parts, None)
                except InputError:
                    continue  # a reading that needs a count this source lacks
                tried.append((a, _rel(a.loss, reported)))
    if not tried:
        raise InputError(
            "reported_loss= cannot be matched: no reading of the reductions fits what terms knows"
        )
    hits = [(a, r) for a, r in tried if r <= LOSS_RTOL]
    others = "; ".join(f"{_reading(a.weighting)}: {a.loss:.6g}" for a, _ in tried if a.weighting)
    if not hits:
        raise InputError(
            f"reported_loss={reported:.6g} matches no reading of the weights ({others}); "
            "pass recon_reduction= (and kl_reduction=) explicitly"
        )
    betas = {round(a.beta, 9) for a, _ in hits}
    if len(betas) > 1:
        names = "; ".join(f"{_reading(a.weighting)} (beta {a.beta:.4g})" for a, _ in hits if a.weighting)
        raise InputError(
            f"reported_loss={reported:.6g} fits several readings with different betas ({names}): "
            "pass recon_reduction= and kl_reduction= explicitly"
        )
    best, rel = min(hits, key=lambda h: h[1])
    assert best.weighting is not None
    note = (
        f"Reductions inferred from the reported loss {reported:.6g}: it matches {_reading(best.weighting)} "
        f"(relative difference {rel:.1e}); "
        + (
            "no other reading comes within 0.1%."
            if len(hits) == 1
            else "the others within 0.1% give the same beta."
        )
    )
    return replace(best, reported_loss=reported, notes=best.notes + (note,))


def audit(
    terms: Any,
    w_recon: Union[float, Weighting],
    w_kl: Optional[float] = None,
    recon_reduction: Optional[str] = None,
    kl_reduction: Optional[str] = None,
    *,
    dims: Optional[float] = None,
    z_dim: Optional[float] = None,
    recon_kind: Optional[str] = None,
    sigma: Any = None,
    b: Any = None,
    recon_batch: Optional[str] = None,
    kl_batch: Optional[str] = None,
    batch_size: Optional[float] = None,
    reported_loss: Optional[float] = None,
    kl_parts: Optional[Mapping[str, float]] = None,
) -> Audit:
    """Audit a weighting on one batch: ``terms`` is :class:`ELBOTerms`, a meter or a scalars dict.

    - The weighting: ``w_recon, w_kl, recon_reduction`` (required, ``"sum"`` or ``"mean"`` over a
      sample's dims) and the options of :func:`effective_beta` (``kl_reduction`` defaults to
      ``"sum"``, the batch reductions to ``"mean"``), or a :class:`Weighting` in place of ``w_recon``
      (e.g. from :mod:`elbits.calibrate.presets`).
    - ``reported_loss``: the loss value the user's code printed for this batch. With
      ``recon_reduction`` left out, the reductions are inferred from it (the one reading whose loss is
      within 0.1% of it; ambiguous or no match raises); with it, the audit says whether it agrees.
    - ``recon_kind="mse"``/``"l1"``: ``terms.recon`` holds each sample's summed squared / absolute
      error (see :func:`~elbits.calibrate.error_terms`), a codelength only at a decoder scale:
      ``sigma=`` / ``b=`` a number, ``"ml"`` (the maximum-likelihood scale of these errors) or None
      (sqrt(1/2) / 1, flagged).
    - ``kl_parts``: ``{"mi", "tc", "dwkl"}`` nats per sample (batch means) for a weighting that
      weighs the KL's parts (beta-TCVAE, FactorVAE's TC).

    ``dims``/``z_dim``/``batch_size`` default to what ``terms`` knows.
    """
    src = _source(terms, dims, z_dim, batch_size)
    parts = _part_values(kl_parts)
    if reported_loss is not None:
        reported_loss = check_weight("reported_loss", reported_loss)
    if isinstance(w_recon, Weighting):
        given = {"w_kl": w_kl, "recon_reduction": recon_reduction, "kl_reduction": kl_reduction,
                 "recon_kind": recon_kind, "recon_batch": recon_batch, "kl_batch": kl_batch}  # fmt: skip
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise InputError(f"a Weighting already fixes {extra}; pass either a Weighting or the weights")
        return _evaluate(src, w_recon, sigma, b, parts, reported_loss)
    if w_kl is None:
        raise InputError("w_kl is required with a number for w_recon (or pass a Weighting)")
    kind = recon_kind or "nll"
    if recon_reduction is None and reported_loss is not None:
        return _infer(
            src, w_recon, w_kl, kl_reduction, kind, recon_batch, kl_batch, sigma, b, parts, reported_loss
        )
    w = Weighting(
        w_recon, w_kl, recon_reduction,  # type: ignore[arg-type]
        kl_reduction or "sum", kind, recon_batch or "mean", kl_batch or "mean",
    )  # fmt: skip
    return _evaluate(src, w, sigma, b, parts, reported_loss)
