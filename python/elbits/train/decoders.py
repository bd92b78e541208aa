"""What a decoder emits for each likelihood elbits trains with, and how that becomes the likelihood's
arguments.

Training images are ``[B, C, H, W]`` floats in [0, 1]. A model's ``forward(x)`` returns ``(out, mu, logvar)``
(or PyTorch-VAE's ``[out, x, mu, logvar]``); ``out`` is one of four declared kinds:

- ``"logits"``: Bernoulli / continuous-Bernoulli logits ``[B, C, H, W]``, or 256 logits per subpixel
  ``[B, 256 * C, H, W]`` for ``categorical256`` (channel ``l * C + c`` is level l of image channel c);
- ``"probs"``: Bernoulli probabilities in [0, 1] (a decoder ending in a sigmoid), checked;
- ``"mean"``: the mean of a ``gaussian`` / ``laplace`` decoder in the data's units, with a fixed ``scale``;
- ``"params"``: the likelihood's own parameters: ``logistic_mixture`` ``[B, 3K, H, W]`` (C = 1) or
  ``[B, 10K, H, W]`` (C = 3) in PixelCNN++ order, ``discretized_gaussian`` ``[B, 2C, H, W]`` (means in
  [-1, 1], then log-scales), ``gaussian`` / ``laplace`` ``[B, 2C, H, W]`` (means, then log-scales).

The 8-bit likelihoods read the images as levels ``round(255 x)``; the data must lie on that grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..api import LIKELIHOODS, elbo_terms
from ..errors import InputError
from ..likelihoods.layouts import CONTINUOUS as _CONTINUOUS
from ..likelihoods.layouts import DECODER_OUTPUTS as DECODER_OUTPUTS  # re-exported by elbits.train
from ..likelihoods.layouts import EIGHT_BIT as _EIGHT_BIT
from ..likelihoods.layouts import KINDS, LEVELS, out_channels
from ..models import BurgessVAE
from ..terms import ELBOTerms

# A float this far from a level (in levels) is off the 8-bit grid: float32 data / 255 is within 1e-4.
GRID_TOL = 0.01


def training_likelihoods() -> tuple[str, ...]:
    """The likelihoods :func:`elbits.train.train` has a decoder layout for (those of :data:`KINDS` that
    :func:`elbits.elbo_terms` knows)."""
    return tuple(k for k in KINDS if k in LIKELIHOODS)


def check_choice(
    likelihood: str, decoder_output: Optional[str], scale: Optional[float], discretize: bool
) -> None:
    """The settings' own rules (no model or data needed); an :class:`InputError` naming the setting."""
    names = training_likelihoods()
    if likelihood not in names:
        raise InputError(f"likelihood must be one of {list(names)}, got {likelihood!r}")
    if decoder_output is not None and decoder_output not in KINDS[likelihood]:
        raise InputError(
            f"decoder_output {decoder_output!r} does not fit likelihood {likelihood!r}: "
            f"expected one of {list(KINDS[likelihood])}"
        )
    if likelihood in _CONTINUOUS:
        if decoder_output == "mean" and scale is None:
            raise InputError(
                f"decoder_output 'mean' for {likelihood!r} needs scale (sigma or b, in the units of "
                "the images in [0, 1]); or emit log-scales too with decoder_output 'params'"
            )
        if decoder_output == "params" and scale is not None:
            raise InputError(
                "scale is for decoder_output 'mean'; with 'params' the decoder emits the log-scales"
            )
    elif scale is not None:
        raise InputError(f"scale is for likelihoods {list(_CONTINUOUS)}, not {likelihood!r}")
    if discretize and likelihood not in _CONTINUOUS:
        raise InputError(
            f"discretize is for likelihoods {list(_CONTINUOUS)} ({likelihood!r} is "
            f"{'discrete already' if likelihood in (*_EIGHT_BIT, 'bernoulli') else 'a density'})"
        )


def default_kind(likelihood: str, scale: Optional[float]) -> str:
    if likelihood in _CONTINUOUS:
        return "params" if scale is None else "mean"
    return KINDS[likelihood][0]


@dataclass(frozen=True)
class Head:
    """One likelihood as a decoder feeds it: ``likelihood``, the declared ``kind``, the images' ``channels``,
    ``components`` (K of a logistic mixture), ``scale`` (fixed sigma / b of a ``"mean"`` decoder) and
    ``discretize`` (gaussian / laplace: the code length of the 8-bit levels instead of the density)."""

    likelihood: str
    kind: str
    channels: int
    components: int = 5
    scale: Optional[float] = None
    discretize: bool = False

    @property
    def out_channels(self) -> int:
        """Channels of ``out`` per pixel."""
        return out_channels(self.likelihood, self.kind, self.channels, self.components)

    @property
    def eight_bit(self) -> bool:
        """Whether the likelihood reads the images as 8-bit levels."""
        return self.likelihood in _EIGHT_BIT or (self.likelihood in _CONTINUOUS and self.discretize)

    def code_length(self, data_levels: Optional[int]) -> bool:
        """Whether D is a code length of the data (so H - D <= R holds), given the grid the data lies on
        (2: binary, 256: 8-bit, None: neither)."""
        if self.likelihood == "bernoulli":
            return data_levels == 2
        return self.eight_bit and data_levels is not None

    def layout(self) -> str:
        """The expected ``out`` shape per sample, in words."""
        c, k = self.channels, self.components
        what = {
            "logistic_mixture": (
                f"{k} mixture logits | "
                f"{'3 x (K means, K log-scales, K coefficients)' if c == 3 else 'K means | K log-scales'}"
                f", K = {k}"
            ),
            "discretized_gaussian": f"{c} means in [-1, 1] | {c} log-scales",
            "gaussian": f"{c} means | {c} log-scales" if self.kind == "params" else f"{c} means",
        }
        what["laplace"] = what["gaussian"]
        for name in ("categorical256", "categorical256_inplace"):
            what[name] = f"256 logits per subpixel, channel l * {c} + c for level l of channel c"
        return f"[{self.out_channels}, H, W] ({what.get(self.likelihood, self.kind)})"

    def loss_settings(self) -> dict[str, Any]:
        """Keyword settings of :class:`elbits.ELBOLoss` / :func:`elbits.elbo_terms` for this head."""
        kw: dict[str, Any] = {}
        if self.kind == "probs":
            kw["input"] = "probs"
        if self.likelihood in _CONTINUOUS:
            if self.kind == "mean":
                kw["scale"] = self.scale
            if self.discretize:
                kw["discretize"] = (0.0, 1.0)
        return kw

    def check(self, out: Any, x: torch.Tensor, where: str = "the model's decoder output") -> None:
        """An :class:`InputError` when ``out`` is not this head's layout for images ``x`` (or, declared
        ``"probs"``, not in [0, 1])."""
        want = (x.shape[0], self.out_channels, *x.shape[2:])
        if not isinstance(out, torch.Tensor):
            raise InputError(f"{where} is a {type(out).__name__}; expected a tensor [B, {self.layout()[1:]}")
        if tuple(out.shape) != want or not out.is_floating_point():
            raise InputError(
                f"{where} is {_describe(out)} for images {tuple(x.shape)}; likelihood "
                f"{self.likelihood!r} ({self.kind}) needs float [B, {self.layout()[1:]}"
            )
        if self.kind == "probs":
            lo, hi = (float(v) for v in torch.aminmax(out.detach()))
            if not (0.0 <= lo and hi <= 1.0):
                hint = " (a tanh output lies in [-1, 1])" if lo < 0 else ""
                raise InputError(
                    f"{where} was declared 'probs' but holds values in [{lo:.4g}, {hi:.4g}]{hint}; "
                    "probabilities lie in [0, 1]: declare what the decoder returns"
                )

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The likelihood's target for images ``x`` in [0, 1]: the images, or their 8-bit levels."""
        if self.likelihood in _EIGHT_BIT:
            return (x * (LEVELS - 1)).round_().to(torch.uint8)
        return x

    def arguments(self, out: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        """``out`` as the likelihood's first argument, and the per-batch keyword arguments (a log-scale)."""
        if self.likelihood.startswith("categorical256"):
            b, _, *spatial = out.shape
            return out.reshape(b, LEVELS, self.channels, *spatial), {}
        if self.likelihood in _CONTINUOUS and self.kind == "params":
            c = self.channels
            return out[:, :c], {"log_scale": out[:, c:]}
        return out, {}

    def terms(self, out: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> ELBOTerms:
        """:func:`elbits.elbo_terms` of a decoder output against images ``x``: nats per sample."""
        params, kw = self.arguments(out)
        name = "categorical256" if self.likelihood == "categorical256_inplace" else self.likelihood
        return elbo_terms(params, self.target(x), mu, logvar, name, **self.loss_settings(), **kw)

    @torch.no_grad()
    def mean_image(self, out: torch.Tensor) -> torch.Tensor:
        """The decoder's mean image ``[B, C, H, W]`` in [0, 1] (for pictures of reconstructions)."""
        c, name = self.channels, self.likelihood
        out = out.detach().float()
        if name == "bernoulli":
            m = out if self.kind == "probs" else torch.sigmoid(out)
        elif name == "continuous_bernoulli":
            # E[x] = 1 / (1 - e^-eta) - 1 / eta, -> 1/2 + eta / 12 at eta = 0
            small = out.abs() < 1e-3
            safe = torch.where(small, torch.ones_like(out), out)
            m = torch.where(small, 0.5 + out / 12, 1 / -torch.expm1(-safe) - 1 / safe)
        elif name.startswith("categorical256"):
            p = torch.softmax(self.arguments(out)[0], dim=1)
            lv = torch.arange(LEVELS, dtype=p.dtype, device=p.device).view(1, LEVELS, *([1] * (p.dim() - 2)))
            m = (p * lv).sum(1) / (LEVELS - 1)
        elif name == "discretized_gaussian":
            m = (out[:, :c] + 1) / 2
        elif name == "logistic_mixture":
            m = (_mixture_mean(out, c) + 1) / 2
        else:
            m = out[:, :c]
        return m.clamp(0.0, 1.0)


def _mixture_mean(p: torch.Tensor, c: int) -> torch.Tensor:
    """E[x] in [-1, 1] of PixelCNN++ parameters ``[B, (10 or 3) K, H, W]`` (the coefficients applied to the
    components' means)."""
    k = p.shape[1] // (10 if c == 3 else 3)
    w = torch.softmax(p[:, :k], dim=1)
    if c == 1:
        return (w * p[:, k : 2 * k]).sum(1, keepdim=True)
    block = [p[:, k + 3 * k * i : k + 3 * k * (i + 1)] for i in range(3)]
    means = [b[:, :k] for b in block]
    alpha, beta, gamma = (torch.tanh(b[:, 2 * k :]) for b in block)
    g = means[1] + alpha * means[0]
    b_ = means[2] + beta * means[0] + gamma * g
    return torch.stack([(w * m).sum(1) for m in (means[0], g, b_)], dim=1)


def _describe(t: torch.Tensor) -> str:
    return f"{str(t.dtype).replace('torch.', '')} {list(t.shape)}"


def split_output(
    result: Any, x: torch.Tensor, where: str = "model(x)"
) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """``(out, mu, logvar)`` of a model's forward: a 3-tuple, or PyTorch-VAE's ``[out, x, mu, logvar]``."""
    if isinstance(result, (tuple, list)):
        if len(result) == 3:
            return result[0], result[1], result[2]
        if len(result) == 4 and result[1] is x:
            return result[0], result[2], result[3]
    got = f"a {type(result).__name__}" + (f" of {len(result)}" if isinstance(result, (tuple, list)) else "")
    raise InputError(f"{where} returned {got}; expected (decoder output, mu, logvar), mu and logvar [B, Z]")


def resolve_head(
    likelihood: str,
    decoder_output: Optional[str],
    model: Any,
    channels: int,
    *,
    components: int = 5,
    scale: Optional[float] = None,
    discretize: bool = False,
) -> Head:
    """The :class:`Head` of a run: the declared kind (``decoder_output``, or the model's ``decoder_output``
    attribute; the default model's when ``model`` is None or a BurgessVAE), checked against the likelihood."""
    check_choice(likelihood, decoder_output, scale, discretize)
    own = getattr(model, "decoder_output", None) if model is not None else None
    if own is not None:
        own_likelihood = getattr(model, "likelihood", likelihood)
        if own_likelihood != likelihood:
            raise InputError(
                f"the model's likelihood is {own_likelihood!r}, the run's {likelihood!r}: set likelihood "
                f"to {own_likelihood!r}"
            )
        if decoder_output is not None and own != decoder_output:
            raise InputError(f"decoder_output is {decoder_output!r} but the model declares {own!r}")
        check_choice(likelihood, own, scale, discretize)
    kind = decoder_output or own
    if kind is None:
        if model is not None and not isinstance(model, BurgessVAE):
            raise InputError(
                f"declare what {type(model).__name__}'s decoder returns: decoder_output (--decoder-output) "
                "or a "
                f"decoder_output attribute on the model; for likelihood {likelihood!r} one of "
                f"{list(KINDS[likelihood])}"
            )
        kind = default_kind(likelihood, scale)
        check_choice(likelihood, kind, scale, discretize)
    return Head(likelihood, kind, channels, components, scale, discretize)
