"""Plain-PyTorch reference implementations of every term, for tests and benchmarks.

These are independent of the compiled core (they use torch's own functions) and
compute in float64 by default. They are not a fallback: elbits.elbo_terms always
runs the compiled kernels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .terms import ELBOTerms


def bernoulli_nll(
    logits: torch.Tensor, target: torch.Tensor, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``[B]`` Bernoulli NLL summed over each sample's elements, nats (binary cross-entropy with logits).

    Written as ``x ([x > 0] - t) + log1p(exp(-|x|))``: ``F.binary_cross_entropy_with_logits`` adds
    ``log(1 + exp(-|x|))`` without log1p, so a confident correct logit's loss (9.4e-14 nats at x = -30,
    t = 0) keeps only 3 digits even in float64."""
    x = logits.to(dtype)
    t = target.to(dtype)
    # -|x| as a where, so that autograd's derivative at x = 0 is sigmoid(0) - t (abs' is 0 there).
    nll = x * ((x > 0).to(dtype) - t) + torch.log1p(torch.exp(torch.where(x > 0, -x, x)))
    return nll.flatten(1).sum(1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``[B, Z]`` KL(N(mu, exp(logvar)) || N(0, 1)) per latent dimension, nats."""
    m = mu.to(dtype)
    lv = logvar.to(dtype)
    # expm1: exp(lv) - 1 - lv cancels to noise near lv = 0, even in float64.
    return 0.5 * (m * m + (torch.expm1(lv) - lv))


def elbo_terms(
    logits: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    likelihood: str = "bernoulli",
    dtype: torch.dtype = torch.float64,
    *,
    input: str = "logits",
    scale=None,
    log_scale=None,
    discretize=None,
) -> ELBOTerms:
    """Reference :class:`ELBOTerms` in ``dtype`` (float64 by default); the keywords as
    :func:`elbits.elbo_terms`."""
    if input == "probs":
        return ELBOTerms(
            bernoulli_probs_nll(logits, target, dtype), gaussian_kl(mu, logvar, dtype), logits[0].numel()
        )
    if likelihood in ("gaussian", "laplace"):
        sc = continuous_scale(scale, log_scale, dtype)
        if discretize is None:
            density = gaussian_nll if likelihood == "gaussian" else laplace_nll
            recon = density(logits, target, sc, dtype)
        else:
            binned = discretized_gaussian_range_nll if likelihood == "gaussian" else discretized_laplace_nll
            lo, hi = discretize
            recon = binned(logits, range_levels(target, lo, hi), sc, lo, hi, dtype)
        return ELBOTerms(recon, gaussian_kl(mu, logvar, dtype), logits[0].numel())
    if likelihood in COLOUR_REFERENCES:
        recon, dims = COLOUR_REFERENCES[likelihood](logits, target, dtype)
        return ELBOTerms(recon, gaussian_kl(mu, logvar, dtype), dims)
    if likelihood != "bernoulli":
        raise ValueError(f"reference has no likelihood {likelihood!r}")
    recon = bernoulli_nll(logits, target, dtype)
    return ELBOTerms(recon, gaussian_kl(mu, logvar, dtype), logits[0].numel())


# ---- 8-bit / colour image likelihoods (docs/likelihoods.md). Data levels 0..255 map
# to x = level / 127.5 - 1 in [-1, 1]; a bin is [x - 1/255, x + 1/255], the edge
# bins of levels 0 and 255 open to -inf and +inf.

_H = 1.0 / 255.0


def image_levels(target: torch.Tensor) -> torch.Tensor:
    """int64 levels 0..255 from uint8/int64 levels or floats in [-1, 1]."""
    if target.is_floating_point():
        return ((target.double() + 1.0) * 127.5).round().long()
    return target.long()


def categorical256_nll(
    logits: torch.Tensor, target: torch.Tensor, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``[B]`` cross-entropy of levels ``[B, *spatial]`` under logits ``[B, 256, *spatial]``, nats."""
    return F.cross_entropy(logits.to(dtype), target.long(), reduction="none").flatten(1).sum(1)


def discretized_logistic_logp(
    level: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor
) -> torch.Tensor:
    """log P(bin of ``level``) under a logistic(mean, exp(log_scale)) on [-1, 1] data, elementwise.

    Interior bins use sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(-(a - b))), in log
    space, exact for every parameter (no mid-point fallback); log(1 - exp(-d)) for the bin width
    d = 2h / scale below 1e-6 is log d - d/2, with log d from the log-scale (d itself underflows to 0
    once the log-scale passes ~740)."""
    x = level.to(mean.dtype) / 127.5 - 1.0
    inv = torch.exp(-log_scale)
    a = inv * (x - mean + _H)
    b = inv * (x - mean - _H)
    up = F.logsigmoid(a)
    down = F.logsigmoid(-b)
    d = 2.0 * _H * inv
    small = d < 1e-6
    log_d = math.log(2.0 * _H) - log_scale
    log1mexp = torch.where(small, log_d - 0.5 * d, torch.log(-torch.expm1(-torch.where(small, 1.0, d))))
    mid = up + down + log1mexp
    return torch.where(level == 0, up, torch.where(level == 255, down, mid))


def _mixture_split(params: torch.Tensor, chans: int):
    """PixelCNN++ order: K logits | per image channel (K means, K log-scales[, K tanh coeffs])."""
    per = 10 if chans == 3 else 3
    k = params.shape[1] // per
    nb = 3 * k if chans == 3 else 2 * k
    rest = params[:, k:].reshape(params.shape[0], chans, nb, *params.shape[2:])
    return (
        k,
        params[:, :k],
        rest[:, :, :k],
        rest[:, :, k : 2 * k],
        (rest[:, :, 2 * k :] if chans == 3 else None),
    )


def logistic_mixture_nll(
    params: torch.Tensor, target: torch.Tensor, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``[B]`` NLL of the PixelCNN++ discretized logistic mixture, nats (exact bins, see
    :func:`discretized_logistic_logp`). params ``[B, 10K, H, W]`` (3 channels) / ``[B, 3K, H, W]`` (1)."""
    lv = image_levels(target)
    chans = lv.shape[1]
    p = params.to(dtype)
    _k, logit, means, log_scales, coeffs = _mixture_split(p, chans)
    x = lv.to(dtype) / 127.5 - 1.0
    if coeffs is not None:
        c = torch.tanh(coeffs)
        x0, x1 = x[:, 0].unsqueeze(1), x[:, 1].unsqueeze(1)
        means = torch.stack(
            [means[:, 0], means[:, 1] + c[:, 0] * x0, means[:, 2] + c[:, 1] * x0 + c[:, 2] * x1], dim=1
        )
    lp = discretized_logistic_logp(lv.unsqueeze(2), means, torch.clamp(log_scales, min=-7.0)).sum(1)
    return -torch.logsumexp(lp + F.log_softmax(logit, dim=1), dim=1).flatten(1).sum(1)


def pixelcnn_pp_nll(params: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[B]`` the PixelCNN++ loss as published (Salimans et al. 2017, as ported to PyTorch), in the
    dtype of ``params``: sigmoid CDF differences, a ``where`` over every branch, and the mid-point
    density fallback where the bin mass is below 1e-5. The eager baseline of the benchmarks."""
    lv = image_levels(target)
    chans = lv.shape[1]
    _k, logit, means, log_scales, coeffs = _mixture_split(params, chans)
    x = (lv.to(params.dtype) / 127.5 - 1.0).unsqueeze(2)
    if coeffs is not None:
        c = torch.tanh(coeffs)
        means = torch.stack(
            [
                means[:, 0],
                means[:, 1] + c[:, 0] * x[:, 0],
                means[:, 2] + c[:, 1] * x[:, 0] + c[:, 2] * x[:, 1],
            ],
            dim=1,
        )
    log_scales = torch.clamp(log_scales, min=-7.0)
    centered = x - means
    inv = torch.exp(-log_scales)
    plus_in = inv * (centered + _H)
    cdf_plus = torch.sigmoid(plus_in)
    min_in = inv * (centered - _H)
    cdf_min = torch.sigmoid(min_in)
    log_cdf_plus = plus_in - F.softplus(plus_in)
    log_one_minus_cdf_min = -F.softplus(min_in)
    cdf_delta = cdf_plus - cdf_min
    mid_in = inv * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    inner = torch.where(
        cdf_delta > 1e-5, torch.log(torch.clamp(cdf_delta, min=1e-12)), log_pdf_mid - math.log(127.5)
    )
    log_probs = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, inner))
    log_probs = log_probs.sum(1) + F.log_softmax(logit, dim=1)
    return -torch.logsumexp(log_probs, dim=1).flatten(1).sum(1)


def discretized_gaussian_logp(
    level: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor
) -> torch.Tensor:
    """log P(bin of ``level``) under N(mean, exp(log_scale)^2) on [-1, 1] data, elementwise.

    Interior bins whose centre is within one sigma of the mean: ``(erf(a/sqrt2) - erf(b/sqrt2)) / 2``,
    which keeps its digits however wide the Gaussian (erf is linear there: the difference of two
    ``log_ndtr`` values near log(1/2) rounds to 0 once sigma is ~e^33). Elsewhere
    ``torch.special.log_ndtr``, the bin reflected into the lower tail. Edges (2 level - 255 +- 1) / 255,
    rounded once (as x +- h, a mean on an edge under a narrow Gaussian would not get P = 1/2)."""
    two_l = 2.0 * level.to(mean.dtype)
    x = (two_l - 255.0) / 255.0
    inv = torch.exp(-log_scale)
    a = inv * ((two_l - 254.0) / 255.0 - mean)
    b = inv * ((two_l - 256.0) / 255.0 - mean)
    central = (inv * (x - mean)).abs() < 1.0
    # Each formula sees harmless (a, b) = (1, -1) where the other is used: a log(0) in the branch
    # not taken would still send NaN through where()'s backward.
    one = torch.ones_like(a)
    ac, bc = torch.where(central, a, one), torch.where(central, b, -one)
    at, bt = torch.where(central, one, a), torch.where(central, -one, b)
    flip = (at + bt) > 0
    hi = torch.where(flip, -bt, at)
    lo = torch.where(flip, -at, bt)
    lhi = torch.special.log_ndtr(hi)
    tail = lhi + torch.log(-torch.expm1(torch.special.log_ndtr(lo) - lhi))
    near = torch.log(0.5 * (torch.erf(ac * math.sqrt(0.5)) - torch.erf(bc * math.sqrt(0.5))))
    mid = torch.where(central, near, tail)
    return torch.where(
        level == 0, torch.special.log_ndtr(a), torch.where(level == 255, torch.special.log_ndtr(-b), mid)
    )


def discretized_gaussian_nll(
    params: torch.Tensor, target: torch.Tensor, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``[B]`` NLL, params ``[B, 2C, *spatial]`` = C means | C log-scales, target levels ``[B, C,
    *spatial]``."""
    lv = image_levels(target)
    chans = lv.shape[1]
    p = params.to(dtype)
    return -discretized_gaussian_logp(lv, p[:, :chans], p[:, chans:]).flatten(1).sum(1)


def continuous_bernoulli_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda), lambda = sigmoid(logits): C = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) = eta / tanh(eta /
    2)."""
    eta = logits
    small = eta.abs() < 1e-3
    safe = torch.where(small, torch.ones_like(eta), eta)
    e2 = eta * eta
    return torch.where(
        small, math.log(2.0) + e2 / 12.0 - 7.0 * e2 * e2 / 1440.0, torch.log(safe / torch.tanh(safe / 2.0))
    )


def continuous_bernoulli_nll(
    logits: torch.Tensor, target: torch.Tensor, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``[B]`` continuous Bernoulli NLL (Loaiza-Ganem & Cunningham 2019), nats per sample. uint8
    targets are levels / 255."""
    x = logits.to(dtype)
    t = target.to(dtype) / 255.0 if target.dtype == torch.uint8 else target.to(dtype)
    nll = F.binary_cross_entropy_with_logits(x, t, reduction="none") - continuous_bernoulli_log_norm(x)
    return nll.flatten(1).sum(1)


def _image_dims(target: torch.Tensor) -> int:
    return target[0].numel()


COLOUR_REFERENCES = {
    "categorical256": lambda x, t, d: (categorical256_nll(x, t, d), _image_dims(t)),
    "categorical256_inplace": lambda x, t, d: (categorical256_nll(x, t, d), _image_dims(t)),
    "logistic_mixture": lambda x, t, d: (logistic_mixture_nll(x, t, d), _image_dims(t)),
    "discretized_gaussian": lambda x, t, d: (discretized_gaussian_nll(x, t, d), _image_dims(t)),
    "continuous_bernoulli": lambda x, t, d: (continuous_bernoulli_nll(x, t, d), _image_dims(t)),
}


# ---- probabilities and continuous decoders (elbits/likelihoods/): torch.distributions and
# plain CDF differences, independent of the log-space formulas elbits uses.


def bernoulli_probs_nll(
    probs: torch.Tensor, target: torch.Tensor, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``[B]`` ``F.binary_cross_entropy`` of probabilities (its logs clamped at -100), nats per sample."""
    return F.binary_cross_entropy(probs.to(dtype), target.to(dtype), reduction="none").flatten(1).sum(1)


def continuous_scale(scale=None, log_scale=None, dtype: torch.dtype = torch.float64):
    """sigma or b as a float or a tensor in ``dtype``, from ``scale`` or ``log_scale``."""
    if log_scale is not None:
        return torch.exp(log_scale.to(dtype))
    return scale.to(dtype) if isinstance(scale, torch.Tensor) else float(scale)


def gaussian_nll(
    mean: torch.Tensor, target: torch.Tensor, scale, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``[B]`` -sum log N(target; mean, scale^2) (``torch.distributions.Normal``), nats per sample."""
    m = mean.to(dtype)
    s = torch.as_tensor(scale, dtype=dtype).expand(m.shape)
    return -torch.distributions.Normal(m, s).log_prob(target.to(dtype)).flatten(1).sum(1)


def laplace_nll(
    mean: torch.Tensor, target: torch.Tensor, scale, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``[B]`` -sum log Laplace(target; mean, scale) (``torch.distributions.Laplace``), nats per sample."""
    m = mean.to(dtype)
    s = torch.as_tensor(scale, dtype=dtype).expand(m.shape)
    return -torch.distributions.Laplace(m, s).log_prob(target.to(dtype)).flatten(1).sum(1)


def range_levels(target: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """int64 levels 0..255 of 8-bit data: integer levels as they are, floats on lo..hi rounded."""
    if target.is_floating_point():
        return ((target.double() - lo) * (255.0 / (hi - lo))).round().long()
    return target.long()


def _bin_edges(levels: torch.Tensor, mean: torch.Tensor, lo: float, hi: float):
    step = (hi - lo) / 255.0
    x = levels.to(mean.dtype) * step + lo
    return x - 0.5 * step, x + 0.5 * step


def discretized_laplace_nll(mean, levels, scale, lo: float, hi: float, dtype: torch.dtype = torch.float64):
    """``[B]`` -sum log P(bin) under Laplace(mean, scale) on 256 levels over [lo, hi], the edge bins
    open: differences of the CDF (bins below the mean) or of the survival function (bins above it),
    each a difference of two exponentials in ``dtype``, accurate while the bin is not far narrower
    than the scale (relative error ~ 1e-16 * scale / bin width)."""
    m = mean.to(dtype)
    b = torch.as_tensor(scale, dtype=dtype).expand(m.shape)
    left, right = _bin_edges(levels, m, lo, hi)
    cdf = lambda y: torch.where(y < m, 0.5 * torch.exp((y - m) / b), 1.0 - 0.5 * torch.exp(-(y - m) / b))  # noqa: E731
    sf = lambda y: torch.where(y < m, 1.0 - 0.5 * torch.exp((y - m) / b), 0.5 * torch.exp(-(y - m) / b))  # noqa: E731
    interior = torch.where(left >= m, sf(left) - sf(right), cdf(right) - cdf(left))
    p = torch.where(levels == 0, cdf(right), torch.where(levels == 255, sf(left), interior))
    return -torch.log(p).flatten(1).sum(1)


def discretized_gaussian_range_nll(
    mean, levels, scale, lo: float, hi: float, dtype: torch.dtype = torch.float64
):
    """``[B]`` -sum log P(bin) under N(mean, scale^2) on 256 levels over [lo, hi], the edge bins open:
    erfc differences in ``dtype``, taken in the lower tail (reflected) so they do not cancel."""
    m = mean.to(dtype)
    s = torch.as_tensor(scale, dtype=dtype).expand(m.shape)
    left, right = _bin_edges(levels, m, lo, hi)
    a = torch.where(levels == 255, torch.full_like(m, math.inf), (right - m) / s)
    b = torch.where(levels == 0, torch.full_like(m, -math.inf), (left - m) / s)
    flip = (a + b) > 0
    hi_, lo_ = torch.where(flip, -b, a), torch.where(flip, -a, b)
    cdf = lambda z: 0.5 * torch.erfc(-z / math.sqrt(2.0))  # noqa: E731
    return -torch.log(cdf(hi_) - cdf(lo_)).flatten(1).sum(1)
