"""Unit audit and exchange rate (elbits.calibrate.audit / .exchange)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from elbits.calibrate import (
    audit,
    effective_beta,
    empirical_frontier,
    exchange_rate,
    exchange_theory,
    local_slopes,
    observe,
)
from elbits.terms import ELBOTerms
from elbits.units import LN2, Quantity

# Example count comes from the hypothesis profile in conftest.py ("ci").
SETTINGS = settings(derandomize=True, deadline=None)


def _terms(recon_nats: float, kl_nats: float, batch: int = 4, z: int = 8, dims: int = 4096) -> ELBOTerms:
    recon = torch.full((batch,), recon_nats, dtype=torch.float64)
    kl = torch.full((batch, z), kl_nats / z, dtype=torch.float64)
    return ELBOTerms(recon, kl, dims)


class FakeMeter:
    """Duck-typed stand-in for elbits.meter.RateDistortionMeter."""

    def __init__(self, rate_nats: float, distortion_nats: float, dims: int) -> None:
        self.r, self.d, self.dims = rate_nats, distortion_nats, dims

    def scalars(self) -> dict[str, float]:
        return {
            "rate_nats": self.r,
            "rate_bits": self.r / LN2,
            "distortion_nats": self.d,
            "distortion_bits": self.d / LN2,
            "distortion_bits_per_dim": self.d / LN2 / self.dims,
            "samples": 10.0,
        }


# ---- effective_beta -------------------------------------------------------------------------


def test_seed_example_is_beta_1024() -> None:
    # The seed: BCE averaged over 64x64 pixels, KL summed over latents, weights (0.8, 0.2).
    assert effective_beta(0.8, 0.2, "mean", dims=64 * 64, kl_reduction="sum") == pytest.approx(1024.0)
    assert effective_beta(0.8, 0.2, recon_reduction="sum", kl_reduction="sum") == pytest.approx(0.25)


def test_effective_beta_reductions() -> None:
    assert effective_beta(1, 1, "mean", 4096, "mean", z_dim=16) == pytest.approx(256.0)
    assert effective_beta(1, 1, "sum", None, "mean", z_dim=16) == pytest.approx(1 / 16)
    # Batch reductions only matter when they differ.
    assert effective_beta(1, 1, "sum", recon_batch="sum", kl_batch="sum") == pytest.approx(1.0)
    assert effective_beta(1, 1, "sum", recon_batch="sum", kl_batch="mean", batch_size=32) == pytest.approx(
        1 / 32
    )
    assert effective_beta(1, 1, "sum", recon_batch="mean", kl_batch="sum", batch_size=32) == pytest.approx(
        32.0
    )


def test_effective_beta_mse() -> None:
    # Summed SSE is the Gaussian NLL at sigma^2 = 1/2 (plus a constant): same beta as an NLL.
    assert effective_beta(1, 1, "sum", recon_kind="mse") == pytest.approx(1.0)
    # With sigma = 0.1 one nat of NLL is 2 * 0.01 of SSE, so w_recon on SSE weighs D 50x less.
    assert effective_beta(1, 1, "sum", recon_kind="mse", sigma=0.1) == pytest.approx(50.0)


def test_effective_beta_errors() -> None:
    with pytest.raises(ValueError, match="dims"):
        effective_beta(0.8, 0.2, "mean")
    with pytest.raises(ValueError, match="z_dim"):
        effective_beta(0.8, 0.2, "sum", kl_reduction="mean")
    with pytest.raises(ValueError, match="batch_size"):
        effective_beta(1, 1, "sum", recon_batch="sum")
    with pytest.raises(ValueError, match="recon_reduction"):
        effective_beta(1, 1, "avg", 10)
    with pytest.raises(ValueError, match="w_recon"):
        effective_beta(0, 1, "sum")


@SETTINGS
@given(
    w_r=st.floats(1e-3, 10),
    w_k=st.floats(0, 10),
    dims=st.integers(1, 10_000),
    z=st.integers(1, 512),
)
def test_effective_beta_matches_the_loss_it_describes(w_r: float, w_k: float, dims: int, z: int) -> None:
    # Whatever the reductions, the weighted loss is proportional to D + beta R.
    d, r = 1234.5, 67.8
    weighted = w_r * d / dims + w_k * r / z
    beta = effective_beta(w_r, w_k, "mean", dims, "mean", z)
    assert weighted == pytest.approx(w_r / dims * (d + beta * r), rel=1e-9)


# ---- audit ---------------------------------------------------------------------------------


def test_audit_seed_table() -> None:
    t = _terms(recon_nats=2000.0, kl_nats=10.0, dims=4096)
    a = audit(t, 0.8, 0.2, "mean")
    assert a.beta == pytest.approx(1024.0)
    assert a.recon_nats == pytest.approx(2000.0)
    assert a.kl_nats == pytest.approx(10.0)
    assert a.recon_as_computed == pytest.approx(2000.0 / 4096)
    assert a.recon_weighted == pytest.approx(0.8 * 2000.0 / 4096)
    assert a.kl_weighted == pytest.approx(2.0)
    assert a.loss == pytest.approx(a.scale * (2000.0 + 1024.0 * 10.0))
    rows = {r["term"]: r for r in a.rows()}
    assert rows["recon"]["actual_bits"] == pytest.approx(2000.0 / LN2)
    assert rows["kl"]["weighted_bits"] == pytest.approx(2.0 / LN2)
    assert a.issues and "do not match" in a.verdict and "1024" in a.verdict
    text = str(a)
    assert "| recon | 0.8 |" in text and "| kl | 0.2 |" in text and "effective beta = 1024" in text


def test_audit_honest_weighting() -> None:
    a = audit(_terms(500.0, 20.0), 1.0, 1.0, "sum")
    assert a.beta == 1.0 and not a.issues
    assert a.verdict.startswith("Units match") and "ELBO" in a.verdict
    b = audit(_terms(500.0, 20.0), 1.0, 4.0, "sum")
    assert "beta-VAE with beta = 4" in b.verdict


def test_audit_mse_is_flagged() -> None:
    a = audit(_terms(300.0, 5.0, dims=784), 1.0, 1.0, "sum", recon_kind="mse")
    assert a.recon_nats is None and "no codelength" in a.verdict
    s = audit(_terms(300.0, 5.0, dims=784), 1.0, 1.0, "sum", recon_kind="mse", sigma=0.5)
    expected = 300.0 / (2 * 0.25) + 0.5 * 784 * math.log(2 * math.pi * 0.25)
    assert s.recon_nats == pytest.approx(expected)
    assert s.beta == pytest.approx(2.0)


def test_audit_takes_a_meter() -> None:
    a = audit(FakeMeter(10.0, 2000.0, 4096), 0.8, 0.2, "mean", z_dim=8)
    assert a.dims == pytest.approx(4096)
    assert a.beta == pytest.approx(1024.0)


def test_observe_sources_agree() -> None:
    t = _terms(2000.0, 10.0, dims=4096)
    o1, o2 = observe(t), observe(FakeMeter(10.0, 2000.0, 4096))
    o3 = observe({"rate_bits": 10.0 / LN2, "distortion_bits": 2000.0 / LN2})
    for o in (o1, o2, o3):
        assert o.rate_nats == pytest.approx(10.0) and o.distortion_nats == pytest.approx(2000.0)
    assert o1.dims == o2.dims == pytest.approx(4096) and o3.dims is None
    with pytest.raises(TypeError):
        observe(3.0)
    with pytest.raises(ValueError, match="finite"):
        observe({"rate_nats": float("nan"), "distortion_nats": 1.0})


# ---- exchange rate: theory -------------------------------------------------------------------


def test_exchange_theory() -> None:
    th = exchange_theory(19.49, 400.0)
    assert th.price == pytest.approx(400.0 / 19.49)
    assert exchange_rate(19.49, 400.0) == th.price
    assert th.total_correlation_bits == pytest.approx(400.0 - 19.49)
    assert th.min_rate_bits(5.0) == pytest.approx(14.49)
    assert th.min_rate_bits(100.0) == 0.0
    assert th.chord_distortion_bits(0.0) == pytest.approx(400.0)
    assert th.chord_distortion_bits(19.49) == pytest.approx(0.0)
    assert "bits of distortion" in str(th)


def test_exchange_theory_takes_quantities() -> None:
    h = Quantity(19.49 * LN2, "nats")
    s = Quantity(400.0, "bits")
    assert exchange_rate(h, s) == pytest.approx(400.0 / 19.49)


def test_exchange_theory_catches_unit_mixups() -> None:
    # sum H(X_i) < H(X) is impossible; usually a nats/bits or per-pixel/per-image slip.
    with pytest.raises(ValueError, match="subadditivity"):
        exchange_theory(19.49, 10.0)
    with pytest.raises(ValueError):
        exchange_theory(0.0, 10.0)
    with pytest.raises(TypeError):
        exchange_theory("a lot", 10.0)


# ---- exchange rate: measurement --------------------------------------------------------------


def test_frontier_linear_known_slope() -> None:
    # D = 300 - 3 R on the frontier, plus dominated points above it.
    front = [(r, 300.0 - 3.0 * r) for r in (0.0, 5.0, 10.0, 20.0, 40.0)]
    junk = [(7.0, 290.0), (15.0, 280.0), (40.0, 250.0), (45.0, 200.0)]
    f = empirical_frontier(front + junk, hull=False)
    assert f.rate_bits == (0.0, 5.0, 10.0, 20.0, 40.0)
    assert all(s == pytest.approx(3.0) for s in f.slopes)
    assert f.price == pytest.approx(3.0)
    assert f.slope_at(12.0) == pytest.approx(3.0)


def test_frontier_curved_slopes_are_betas() -> None:
    # Optimum of D + beta R on D = a exp(-R/k): slope -dD/dR = (a/k) exp(-R/k) = beta.
    a, k = 500.0, 4.0
    betas = [64.0, 32.0, 16.0, 8.0, 4.0, 2.0, 1.0]
    sweep = {}
    for b in betas:
        r = k * math.log(a / (k * b))
        sweep[b] = {"rate_bits": r, "distortion_bits": a * math.exp(-r / k)}
    f = empirical_frontier(sweep)
    assert f.labels == tuple(betas)
    assert list(f.slopes) == sorted(f.slopes, reverse=True)
    for i, s in enumerate(f.slopes):
        # A chord of a convex curve has the slope of some point between its ends.
        assert betas[i + 1] <= s <= betas[i]
        # ... and of the log-mean of the two betas for an exponential.
        assert s == pytest.approx((betas[i] - betas[i + 1]) / math.log(betas[i] / betas[i + 1]), rel=1e-9)
    lo, hi = f.beta_range(3)
    assert lo <= 8.0 <= hi
    assert "beta range" in f.table()


def test_frontier_units_and_sources() -> None:
    pts_nats = [(0.0, 100.0), (10.0, 80.0)]
    f = empirical_frontier(pts_nats, unit="nats")
    assert f.rate_bits[1] == pytest.approx(10.0 / LN2)
    assert f.slopes[0] == pytest.approx(2.0)  # bits per bit = nats per nat
    g = empirical_frontier([FakeMeter(0.0, 100.0, 10), _terms(80.0, 10.0, dims=10)])
    assert g.slopes[0] == pytest.approx(2.0)


def test_local_slopes_plain_numbers() -> None:
    assert local_slopes([0, 1, 3], [10, 7, 5]) == [3.0, 1.0]
    with pytest.raises(ValueError):
        local_slopes([0, 0], [1, 2])


@SETTINGS
@given(
    rates=st.lists(st.floats(0, 100), min_size=2, max_size=12, unique=True),
    bumps=st.lists(st.floats(0.1, 50), min_size=0, max_size=8),
)
def test_hull_is_convex_and_below_every_point(rates: list[float], bumps: list[float]) -> None:
    pts = [(r, 200.0 * math.exp(-r / 20.0)) for r in rates]
    pts += [(rates[i % len(rates)], pts[i % len(pts)][1] + b) for i, b in enumerate(bumps)]
    f = empirical_frontier(pts)
    s = f.slopes
    assert all(x >= 0 for x in s)
    assert all(s[i] >= s[i + 1] - 1e-9 for i in range(len(s) - 1))
    # Every input point lies on or above the hull (within its rate range).
    for r, d in pts:
        if f.rate_bits[0] <= r <= f.rate_bits[-1] and len(f.rate_bits) > 1:
            i = min(max(0, sum(1 for x in f.rate_bits if x <= r) - 1), len(s) - 1)
            line = f.distortion_bits[i] - s[i] * (r - f.rate_bits[i])
            assert d >= line - 1e-6


def test_works_with_the_real_meter_and_entropy_results() -> None:
    meter_mod = pytest.importorskip("elbits.meter")
    entropy_mod = pytest.importorskip("elbits.entropy")
    import numpy as np

    t = _terms(2000.0, 10.0, dims=4096)
    m = meter_mod.RateDistortionMeter()
    m.update(t)
    o = observe(m)
    assert o.rate_nats == pytest.approx(10.0) and o.distortion_nats == pytest.approx(2000.0)
    assert audit(m, 0.8, 0.2, "mean", z_dim=8).beta == pytest.approx(1024.0)
    imgs = (np.random.default_rng(0).random((500, 16)) < 0.3).astype(np.uint8)
    joint, marginal = entropy_mod.empirical_entropy(imgs), entropy_mod.marginal_pixel_entropy(imgs)
    th = exchange_theory(joint, marginal)
    assert th.price == pytest.approx(marginal.total.bits / joint.entropy.bits)
    assert th.price >= 1.0
