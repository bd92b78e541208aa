"""ELBO surgery: R = I(X;Z) + KL(q(z)||p(z)) on cases with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from elbits.analysis import elbo_surgery, gaussian_kl, log_aggregate, log_normal


def test_log_aggregate_matches_direct_mixture():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(37, 3, generator=g, dtype=torch.float64)
    lv = 0.3 * torch.randn(37, 3, generator=g, dtype=torch.float64)
    z = torch.randn(11, 3, generator=g, dtype=torch.float64)
    direct = torch.logsumexp(log_normal(z[:, None], mu[None], lv[None]), 1) - math.log(37)
    own = torch.arange(11) * 3
    loo_direct = torch.stack(
        [
            torch.logsumexp(
                torch.cat(
                    [
                        log_normal(z[i], mu[: own[i]], lv[: own[i]]),
                        log_normal(z[i], mu[own[i] + 1 :], lv[own[i] + 1 :]),
                    ]
                ),
                0,
            )
            for i in range(11)
        ]
    ) - math.log(36)
    # Tiny chunks and a tiny element budget exercise both loops.
    got, loo = log_aggregate(z, mu, lv, own=own, chunk=5, max_elements=20)
    assert torch.allclose(got, direct, atol=1e-10)
    assert loo is not None and torch.allclose(loo, loo_direct, atol=1e-10)


def test_disjoint_tiny_posteriors_give_log_n():
    n = 512
    mu = 3.0 * torch.randn(n, 4, generator=torch.Generator().manual_seed(1))
    lv = torch.full((n, 4), math.log(1e-8))
    s = elbo_surgery(mu, lv, points=None, samples=2)
    assert s.mi_bits == pytest.approx(math.log2(n), abs=1e-6)
    assert s.log_n_bits == pytest.approx(9.0)
    assert s.rate_bits == pytest.approx(s.mi_bits + s.marginal_kl_bits)
    assert s.marginal_kl_bits > 0


def test_identical_posteriors_give_zero_information():
    n = 300
    mu = torch.tensor([[0.5, -1.0, 2.0]]).repeat(n, 1)
    lv = torch.tensor([[-1.0, 0.2, -0.5]]).repeat(n, 1)
    s = elbo_surgery(mu, lv, samples=3)
    assert s.mi_bits == pytest.approx(0.0, abs=1e-9)
    # All the rate is prior mismatch: KL(q(z)||p) = KL(q(z|x)||p), analytically.
    assert s.marginal_kl_bits == pytest.approx(s.rate_bits)
    assert s.rate_bits == pytest.approx(float(gaussian_kl(mu[:1], lv[:1]).sum()) / math.log(2))


def test_gaussian_channel_known_information_and_zero_mismatch():
    # x ~ N(0, 1) per dim, z | x ~ N(a x, s2) with a^2 + s2 = 1: q(z) = N(0, 1) = p(z) exactly.
    n, a, s2 = 6000, 0.9, 0.19
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    s = elbo_surgery(a * x, torch.full((n, 2), math.log(s2)), points=1500, samples=2, seed=3)
    true_mi = 2 * 0.5 * math.log2(1 + a * a / s2)
    assert s.mi_bits == pytest.approx(true_mi, abs=5 * s.mi_stderr_bits + 0.05)
    assert s.mi_bits <= s.log_n_bits
    assert abs(s.marginal_kl_bits) < 5 * s.mi_stderr_bits + 0.05  # >= 0 within noise
    assert abs(s.marginal_kl_mc_bits) < 0.05
    assert all(abs(v) < 0.02 for v in s.marginal_kl_per_dim_bits)
    assert s.rate_bits == pytest.approx(s.mi_bits + s.marginal_kl_bits)


def test_bounds_hold_on_random_posteriors():
    g = torch.Generator().manual_seed(4)
    mu = torch.randn(200, 5, generator=g)
    lv = torch.randn(200, 5, generator=g) - 1
    s = elbo_surgery(mu, lv, points=None, samples=4)
    assert 0 <= s.mi_bits <= s.log_n_bits + 1e-9
    assert s.marginal_kl_bits > -3 * s.mi_stderr_bits
    assert s.mi_loo_bits >= s.mi_bits  # dropping the own component can only lower q_hat(z)
    assert s.points == 200 and s.components == 200


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        elbo_surgery(torch.zeros(3, 2), torch.zeros(3, 3))
