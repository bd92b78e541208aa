"""ELBO surgery: split the rate R into information about the image and prior mismatch.

Hoffman & Johnson (2016), "ELBO surgery": with x uniform over a data set of N images and the aggregate
posterior q(z) = (1/N) sum_n q(z|x_n),

    R = E_x KL(q(z|x) || p(z)) = I(X;Z) + KL(q(z) || p(z)),

where I(X;Z) is the mutual information under q(x, z) = q(z|x)/N. Only I(X;Z) carries information about
the image; KL(q(z) || p(z)) is what the encoder pays because its codes, pooled over the data, do not look
like draws from the prior N(0, I). I(X;Z) <= H(X) <= log N for any encoder.

Estimator (:func:`elbo_surgery`): R exactly (the analytic Gaussian KL averaged over all N); then, for a
stratified subset of M of the N images (each image at most once), ``samples`` draws z ~ q(z|x_m) each and

    I_hat = mean[ log q(z|x_m) - log q_hat(z) ],   log q_hat(z) = logsumexp_n log q(z|x_n) - log N

with the logsumexp over **all** N components (float64, chunked: memory is O(M * chunk)). Bias:

- For the data distribution "uniform over the N images" q_hat is the exact aggregate posterior, so I_hat is
  unbiased (only Monte Carlo noise from the M x samples draws, reported as ``mi_stderr_bits``), and
  I_hat <= log N holds for every draw (the own component alone gives q_hat(z) >= q(z|x_m)/N).
- When the N images are a random sample of a larger set (e.g. 16,384 of the 737,280 dSprites images),
  I_hat is the InfoNCE estimator with the true critic: in expectation a *lower* bound on the larger set's
  I(X;Z), saturating at log N when posteriors barely overlap, so KL(q(z)||p(z)) = R - I_hat is then an
  upper bound. The leave-one-out variant (own component dropped, log(N - 1)) is in expectation an *upper*
  bound there (Poole et al. 2019); it is reported as ``mi_loo_bits`` and explodes when the posteriors are
  separated by more than the sample spacing (then only the lower bound is informative).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional, Union

import numpy as np
import torch

from . import reference
from .units import BITS_PER_NAT

LOG_2PI = math.log(2 * math.pi)


def _f64(t: Any, device: Union[str, torch.device] = "cpu") -> torch.Tensor:
    return torch.as_tensor(t).detach().to(device=device, dtype=torch.float64)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``[N, Z]`` KL(N(mu, exp(logvar)) || N(0, 1)) per dimension, nats (float64, on the CPU):
    :func:`elbits.reference.gaussian_kl`."""
    return reference.gaussian_kl(_f64(mu), _f64(logvar))


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)), summed over the last axis (broadcasting), nats."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(-1)


def log_aggregate(
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    own: Optional[torch.Tensor] = None,
    chunk: int = 4096,
    max_elements: int = 1 << 23,
    device: Union[str, torch.device, None] = None,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """log q(z) = logsumexp_n log q(z|x_n) - log N for ``z`` ``[M, Z]``, over all ``N`` components, float64.

    Chunked over components (and over z when ``M * chunk * Z`` exceeds ``max_elements``), with a running
    logsumexp, so memory stays bounded for N up to the whole dSprites grid. With ``own`` (``[M]`` indices
    of the component each z was drawn from), also returns the leave-one-out value (that component
    dropped, ``- log(N - 1)``); else ``None``. ``device``: where to compute (default: the CPU); results on the
    CPU.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    z, mu, logvar = _f64(z, dev), _f64(mu, dev), _f64(logvar, dev)
    m, zd = z.shape
    n = mu.shape[0]
    if mu.shape != logvar.shape or mu.shape[1] != zd:
        raise ValueError(
            f"z [M, Z] and mu, logvar [N, Z] expected, got {tuple(z.shape)}, "
            f"{tuple(mu.shape)}, {tuple(logvar.shape)}"
        )
    own_t = None if own is None else torch.as_tensor(own, dtype=torch.int64).to(dev)
    chunk = max(1, min(chunk, n))
    zb = max(1, min(m, max_elements // chunk))
    out = torch.empty(m, dtype=torch.float64, device=dev)
    out_loo = torch.empty(m, dtype=torch.float64, device=dev) if own_t is not None else None
    # -0.5 sum_d (z_d - mu_nd)^2 / v_nd + const_n = [z, z^2, 1] . [mu_n / v_n, -0.5 / v_n, c_n]: one matmul.
    inv_var = torch.exp(-logvar)
    mu_iv = mu * inv_var
    const = -0.5 * (LOG_2PI * zd + logvar.sum(1) + (mu * mu_iv).sum(1))  # [N]
    comp = torch.cat([mu_iv, -0.5 * inv_var, const[:, None]], 1)  # [N, 2Z + 1]
    for s in range(0, m, zb):
        zs = z[s : s + zb]
        feats = torch.cat([zs, zs * zs, torch.ones(len(zs), 1, dtype=torch.float64, device=dev)], 1)
        acc = torch.full((len(zs),), -math.inf, dtype=torch.float64, device=dev)
        acc_loo = acc.clone() if own_t is not None else None
        for c in range(0, n, chunk):
            lp = feats @ comp[c : c + chunk].T
            lse = torch.logsumexp(lp, 1)
            acc = torch.logaddexp(acc, lse)
            if own_t is not None and acc_loo is not None:
                o = own_t[s : s + zb] - c
                rows = ((o >= 0) & (o < lp.shape[1])).nonzero().flatten()
                if len(rows):
                    masked = lp[rows]
                    masked[torch.arange(len(rows), device=dev), o[rows]] = -math.inf
                    lse = lse.clone()
                    lse[rows] = torch.logsumexp(masked, 1)
                acc_loo = torch.logaddexp(acc_loo, lse)
        out[s : s + zb] = acc - math.log(n)
        if out_loo is not None and acc_loo is not None:
            out_loo[s : s + zb] = acc_loo - (math.log(n - 1) if n > 1 else math.nan)
    return out.cpu(), (None if out_loo is None else out_loo.cpu())


@dataclass(frozen=True)
class Surgery:
    """R = I(X;Z) + KL(q(z) || p(z)), bits per image, for x uniform over ``components`` images.

    - ``rate_bits``: mean KL(q(z|x) || p(z)) over all images (analytic).
    - ``mi_bits``: the I(X;Z) estimate (see the module docstring: exact-in-expectation for the N images,
      a lower bound for a larger set they sample); ``mi_stderr_bits`` its Monte Carlo standard error.
    - ``marginal_kl_bits``: R - I, the rate lost to prior mismatch (so the two add up exactly);
      ``marginal_kl_mc_bits``: its direct Monte Carlo estimate E[log q(z) - log p(z)] (a check).
    - ``log_n_bits``: log2 N, the ceiling of ``mi_bits``; ``mi_loo_bits``: leave-one-out estimate (an upper
      bound in expectation when the N images sample a larger set; ``inf`` when N = 1).
    - ``marginal_kl_per_dim_bits``: KL(q(z_j) || N(0, 1)) per latent dimension, same estimator in 1-D.
    """

    rate_bits: float
    mi_bits: float
    mi_stderr_bits: float
    marginal_kl_bits: float
    marginal_kl_mc_bits: float
    mi_loo_bits: float
    log_n_bits: float
    components: int
    points: int
    samples_per_point: int
    marginal_kl_per_dim_bits: tuple[float, ...]
    estimator: str = (
        "stratified: z ~ q(z|x_m) for `points` images x_m, `samples_per_point` each; "
        "log q(z) by logsumexp over all `components` posteriors (float64)"
    )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["marginal_kl_per_dim_bits"] = list(self.marginal_kl_per_dim_bits)
        return d

    def __str__(self) -> str:
        return (
            f"R = {self.rate_bits:.3f} bits = I(X;Z) {self.mi_bits:.3f} (+-{self.mi_stderr_bits:.3f}) "
            f"+ KL(q(z)||p(z)) {self.marginal_kl_bits:.3f} bits; log2 N = {self.log_n_bits:.3f} "
            f"(N = {self.components}, {self.points} x {self.samples_per_point} z samples)"
        )


def elbo_surgery(
    mu: Any,
    logvar: Any,
    *,
    points: Optional[int] = 2048,
    samples: int = 4,
    seed: int = 0,
    chunk: int = 4096,
    per_dim: bool = True,
    per_dim_components: int = 8192,
    device: Union[str, torch.device, None] = None,
) -> Surgery:
    """:class:`Surgery` of posteriors ``mu``, ``logvar`` ``[N, Z]`` (one row per image of the data set).

    ``points``: images whose z are sampled (a random subset without replacement; ``None`` or >= N: all);
    ``samples``: z draws per such image. Cost O(points * samples * N * Z) float64 operations.
    """
    mu, logvar = _f64(mu), _f64(logvar)
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must both be [N, Z], got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    n, zd = mu.shape
    if n < 1 or samples < 1:
        raise ValueError("need at least one image and one sample")
    g = torch.Generator().manual_seed(int(seed))
    m = n if points is None or points >= n else int(points)
    idx = torch.arange(n) if m == n else torch.randperm(n, generator=g)[:m].sort().values
    own = idx.repeat_interleave(samples)
    eps = torch.randn(len(own), zd, generator=g, dtype=torch.float64)
    z = mu[own] + eps * torch.exp(0.5 * logvar[own])
    log_cond = log_normal(z, mu[own], logvar[own])
    log_prior = -0.5 * (LOG_2PI * zd + (z * z).sum(1))
    log_q, log_q_loo = log_aggregate(z, mu, logvar, own=own, chunk=chunk, device=device)
    assert log_q_loo is not None
    rate = float(gaussian_kl(mu, logvar).sum(1).mean())
    # Average the samples of each point first: the points are the independent units.
    per_point = (log_cond - log_q).view(m, samples).mean(1)
    mi = float(per_point.mean())
    se = float(per_point.std(unbiased=True) / math.sqrt(m)) if m > 1 else math.nan
    mi_loo = float((log_cond - log_q_loo).mean()) if n > 1 else math.inf
    kl_mc = float((log_q - log_prior).mean())
    dims: list[float] = []
    if per_dim:
        sub = (
            torch.arange(n)
            if n <= per_dim_components
            else torch.randperm(n, generator=g)[:per_dim_components]
        )
        for j in range(zd):
            lq, _ = log_aggregate(
                z[:, j : j + 1], mu[sub, j : j + 1], logvar[sub, j : j + 1], chunk=16384, device=device
            )
            lp = -0.5 * (LOG_2PI + z[:, j] ** 2)
            dims.append(float((lq - lp).mean()) * BITS_PER_NAT)
    return Surgery(
        rate_bits=rate * BITS_PER_NAT,
        mi_bits=mi * BITS_PER_NAT,
        mi_stderr_bits=se * BITS_PER_NAT,
        marginal_kl_bits=(rate - mi) * BITS_PER_NAT,
        marginal_kl_mc_bits=kl_mc * BITS_PER_NAT,
        mi_loo_bits=mi_loo * BITS_PER_NAT,
        log_n_bits=math.log2(n),
        components=n,
        points=m,
        samples_per_point=int(samples),
        marginal_kl_per_dim_bits=tuple(dims),
    )


def posterior_overlap(mu: Any, logvar: Any) -> np.ndarray:
    """``[Z]`` ratio of the mean posterior std to the std of the means, per dimension: << 1 means the
    posteriors of different images barely overlap along that axis (I(X;Z) then saturates near log N)."""
    mu, logvar = _f64(mu), _f64(logvar)
    return (torch.exp(0.5 * logvar).mean(0) / mu.std(0).clamp_min(1e-12)).numpy()


__all__ = ["Surgery", "elbo_surgery", "gaussian_kl", "log_aggregate", "log_normal", "posterior_overlap"]
