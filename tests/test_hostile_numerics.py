"""Hostile numerics (issue #14 section 4): every likelihood and the KL at the edges of its stated
parameter range (docs/numerics.md), forward and gradient, against the float64 references in
elbits.reference and, where float64 itself runs out of digits, mpmath at 80-100 digits.

The contract tested: with float32 parameters inside the stated range, ``recon`` matches float64 to
~1e-6 relative per sample (relative to the sum of the per-element magnitudes where the terms can
have either sign: the continuous Bernoulli), gradients to ~1e-6 of their scale, all finite, and
``check_finite=True`` raises nothing.
"""

import math

import mpmath
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import elbits
from elbits import reference as ref

RTOL = 2e-6  # per-sample recon vs float64 (measured worst cases: docs/numerics.md)
GTOL = 1e-6  # gradients, relative to the largest gradient magnitude of the case (at least 1)
BOUND = 1e4  # the |logit| / |mean| bound of the contract


def f32(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32)


def fused(name, params, target, z=2):
    """(recon [B] float64, d sum(recon) / d params float64) from the compiled kernels."""
    p = params.detach().clone().requires_grad_(True)
    mu = torch.zeros(p.shape[0], z)
    terms = elbits.elbo_terms(p, target, mu, torch.zeros_like(mu), name)
    assert torch.isfinite(terms.recon).all(), terms.recon
    terms.recon.sum().backward()
    assert torch.isfinite(p.grad).all()
    return terms.recon.detach().double(), p.grad.double()


def reference(name, params, target, z=2):
    """The same from elbits.reference in float64 on the same (float32-rounded) parameters."""
    p = params.detach().double().requires_grad_(True)
    mu = torch.zeros(p.shape[0], z, dtype=torch.float64)
    recon = ref.elbo_terms(p, target, mu, torch.zeros_like(mu), name).recon
    recon.sum().backward()
    return recon.detach(), p.grad


def assert_recon(got, want, rtol=RTOL, scale=None):
    scale = want.abs() if scale is None else scale
    err = (got - want).abs()
    assert (err <= rtol * scale).all(), (err / scale).max().item()


def assert_grad(got, want, gtol=GTOL):
    scale = max(want.abs().max().item(), 1.0)
    err = (got - want).abs().max().item()
    assert err <= gtol * scale, err / scale


def check_against_reference(name, params, target, rtol=RTOL, gtol=GTOL):
    got, g = fused(name, params, target)
    want, gw = reference(name, params, target)
    scale = None
    if name == "continuous_bernoulli":
        # Terms of either sign: relative to the sum of their magnitudes, which the float64 reference
        # knows to ~1e-16 absolute each (a difference of two log 2 near eta = 0).
        per_element = ref.continuous_bernoulli_nll(params.double().reshape(-1, 1), target.reshape(-1, 1))
        scale = per_element.abs().view(params.shape[0], -1).sum(1) + 1e-9 * params[0].numel()
    assert_recon(got, want, rtol, scale)
    assert_grad(g, gw, gtol)


def noise(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- categorical256


@given(
    base=st.one_of(st.sampled_from([-BOUND, BOUND]), st.floats(-BOUND, BOUND)),
    spread=st.floats(0.0, 40.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_categorical_logits_near_bound(base, spread, seed):
    x = (base + spread * noise((2, 256, 3), seed)).clamp(-BOUND, BOUND).float()
    t = torch.randint(0, 256, (2, 3), generator=torch.Generator().manual_seed(seed + 1), dtype=torch.uint8)
    check_against_reference("categorical256", x, t)


@pytest.mark.parametrize("value", [-BOUND, BOUND, 0.0, -3.0])
def test_categorical_all_logits_equal(value):
    # Every level equally likely: 4 pixels x ln 256 exactly (issue: 22.1797 at -1e4, not 22.1807).
    x = torch.full((1, 256, 4), value)
    got, g = fused("categorical256", x, torch.zeros(1, 4, dtype=torch.uint8))
    assert abs(got.item() - 4 * math.log(256)) <= 1e-7 * 4 * math.log(256)
    assert_grad(g, reference("categorical256", x, torch.zeros(1, 4, dtype=torch.uint8))[1])


@given(
    base=st.sampled_from([-BOUND, BOUND, 0.0]), spread=st.floats(0.0, 40.0), seed=st.integers(0, 2**31 - 1)
)
def test_categorical_softmax_rows_sum_to_one(base, spread, seed):
    # d nll / d x = softmax - onehot: each pixel's row sums to 0 (issue: 4.7e-4 near +-1e4).
    x = (base + spread * noise((1, 256, 5), seed)).clamp(-BOUND, BOUND).float()
    t = torch.randint(0, 256, (1, 5), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    _, g = fused("categorical256", x, t)
    assert g.sum(1).abs().max().item() <= 1e-6


@pytest.mark.parametrize("base", [-BOUND, 0.0, BOUND - 60])
@pytest.mark.parametrize("gap", [5.0, 20.0, 60.0])
def test_categorical_confident_pixel(base, gap):
    # The target leads by `gap`: nll = log(1 + 255 e^-gap) (5e-7 nats at 20), whose digits a float
    # sum 1 + 255 e^-gap would round away.
    x = torch.full((1, 256, 2), base)
    x[:, 7] += gap
    t = torch.full((1, 2), 7, dtype=torch.uint8)
    got, _ = fused("categorical256", x, t)
    want = 2 * math.log1p(255 * math.exp(float(x[0, 0, 0]) - float(x[0, 7, 0])))
    assert abs(got.item() - want) <= RTOL * want


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_categorical_low_precision_logits_near_bound(dtype):
    x = (BOUND - 30 * noise((2, 256, 3), 5).abs()).to(dtype)
    t = torch.randint(0, 256, (2, 3), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    got, _ = fused("categorical256", x, t)
    want, _ = reference("categorical256", x, t)
    assert_recon(got, want)


# ------------------------------------------------------------------------------- Bernoulli


@pytest.mark.parametrize("x", [BOUND, -BOUND, 30.0, -30.0])
@pytest.mark.parametrize("t", [1.0, 1.0 - 2.0**-24, 1.0 - 1e-3, 0.5, 1e-3, 2.0**-24, 0.0])
def test_bernoulli_soft_target_at_logit_bound(x, t):
    # relu(x) - t x near t = 1 and x = 1e4 used to round t x to the ulp of x (5e-4): the whole loss.
    logits = torch.full((1, 3), x)
    target = torch.full((1, 3), t)
    check_against_reference("bernoulli", logits, target)


@given(
    x=st.lists(st.floats(-BOUND, BOUND, width=32), min_size=1, max_size=40), t=st.floats(0.0, 1.0, width=32)
)
def test_bernoulli_random_in_contract(x, t):
    logits = f32(x).view(1, -1)
    target = torch.full_like(logits, t)
    check_against_reference("bernoulli", logits, target)


# -------------------------------------------------------------------- continuous Bernoulli


@pytest.mark.parametrize("eta", [BOUND, -BOUND, 88.0, -88.0])
@pytest.mark.parametrize("x", [1.0, 1.0 - 2.0**-24, 0.999, 0.5, 1e-3, 0.0])
def test_continuous_bernoulli_at_logit_bound(eta, x):
    logits = torch.full((1, 3), eta)
    target = torch.full((1, 3), x)
    check_against_reference("continuous_bernoulli", logits, target)


@pytest.mark.parametrize("eta", [0.0, 1e-6, 0.01, 0.4999, 0.5, 0.5001, -0.5, 3.0])
def test_continuous_bernoulli_at_series_cut(eta):
    # |eta| < 0.5: Taylor series of log C and its derivative; the two sides must agree.
    logits = torch.full((1, 4), eta)
    target = f32([[0.0, 0.3, 0.7, 1.0]])
    check_against_reference("continuous_bernoulli", logits, target)


@given(
    eta=st.lists(st.floats(-BOUND, BOUND, width=32), min_size=1, max_size=30), x=st.floats(0.0, 1.0, width=32)
)
def test_continuous_bernoulli_random_in_contract(eta, x):
    logits = f32(eta).view(1, -1)
    check_against_reference("continuous_bernoulli", logits, torch.full_like(logits, x))


# ---------------------------------------------------------------------- logistic mixture


# The mixture's gradients carry the float32 rounding of the coupled mean m + alpha x, which a = s (x - m + h)
# multiplies by s (up to e^7): 2e-6 to 1.2e-5 of their scale measured, the same at mixture logits 0 and
# +-1e4 (docs/numerics.md).
MIXTURE_GTOL = 5e-5


def mixture_params(k, side, seed, logit_base=0.0, logit_spread=3.0, mean_scale=1.0, log_scale=(-7.0, 2.0)):
    """PixelCNN++ params [1, 10K, side, side] for a 3-channel image."""
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(1, 10 * k, side, side, generator=g)
    p[:, :k] = logit_base + logit_spread * p[:, :k]
    nb = 3 * k
    for c in range(3):
        m0 = k + c * nb
        p[:, m0 : m0 + k] *= mean_scale
        lo, hi = log_scale
        p[:, m0 + k : m0 + 2 * k] = lo + (hi - lo) * torch.rand(1, k, side, side, generator=g)
    return p.float()


@given(base=st.sampled_from([-BOUND, BOUND]), spread=st.floats(0.0, 20.0), seed=st.integers(0, 2**31 - 1))
def test_mixture_logits_near_bound(base, spread, seed):
    p = mixture_params(4, 2, seed, logit_base=base, logit_spread=spread)
    t = torch.randint(0, 256, (1, 3, 2, 2), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    check_against_reference("logistic_mixture", p, t, gtol=MIXTURE_GTOL)


@pytest.mark.parametrize("log_scale", [(-7.0, -7.0), (-30.0, -7.5), (10.0, 80.0), (BOUND, BOUND)])
@pytest.mark.parametrize("mean_scale", [1.0, BOUND])
def test_mixture_scale_and_mean_edges(log_scale, mean_scale):
    # Log-scales at and below the -7 clamp (gradient 0 below it), very wide components, far means.
    p = mixture_params(3, 2, 11, mean_scale=mean_scale, log_scale=log_scale).clamp(-BOUND, BOUND)
    t = torch.randint(0, 256, (1, 3, 2, 2), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    check_against_reference("logistic_mixture", p, t, gtol=MIXTURE_GTOL)


# ------------------------------------------------------------------ discretized Gaussian


def dg_truth(level: int, mean: float, log_scale: float) -> tuple[float, float, float]:
    """(-log P(bin), its derivatives w.r.t. the mean and the log-scale) at 100 digits."""
    with mpmath.workdps(100):
        s = mpmath.exp(mpmath.mpf(log_scale))
        m = mpmath.mpf(mean)
        a = (mpmath.mpf(2 * level - 254) / 255 - m) / s if level < 255 else mpmath.inf
        b = (mpmath.mpf(2 * level - 256) / 255 - m) / s if level > 0 else -mpmath.inf

        def cdf(z):
            return mpmath.erfc(-z / mpmath.sqrt(2)) / 2

        def pdf(z):
            return mpmath.npdf(z) if mpmath.isfinite(z) else mpmath.mpf(0)

        def zpdf(z):
            return z * mpmath.npdf(z) if mpmath.isfinite(z) else mpmath.mpf(0)

        if abs(a) < 1 and abs(b) < 1:  # wide Gaussians: erf is linear here, its difference exact
            p = (mpmath.erf(a / mpmath.sqrt(2)) - mpmath.erf(b / mpmath.sqrt(2))) / 2
        else:
            p = cdf(a) - cdf(b) if a + b < 0 else cdf(-b) - cdf(-a)
        return float(-mpmath.log(p)), float((pdf(a) - pdf(b)) / (s * p)), float((zpdf(a) - zpdf(b)) / p)


def check_dg_truth(means, log_scales, levels, rtol=RTOL, gtol=GTOL):
    """Every (mean, log-scale, level) as one sample of one subpixel, against dg_truth."""
    cases = [(m, s, lv) for m in means for s in log_scales for lv in levels]
    p = f32([[[m], [s]] for m, s, _ in cases])
    t = torch.tensor([[[lv]] for _, _, lv in cases], dtype=torch.uint8)
    got, g = fused("discretized_gaussian", p, t)
    for i, (nll, dm, dls) in enumerate(
        dg_truth(lv, float(p[i, 0]), float(p[i, 1])) for i, (_, _, lv) in enumerate(cases)
    ):
        assert abs(got[i].item() - nll) <= rtol * abs(nll) + 1e-7, (cases[i], got[i].item(), nll)
        scale = max(abs(dm), abs(dls), 1.0)
        assert abs(g[i, 0, 0].item() - dm) <= gtol * scale, (cases[i], g[i, 0, 0].item(), dm)
        assert abs(g[i, 1, 0].item() - dls) <= gtol * scale, (cases[i], g[i, 1, 0].item(), dls)


@pytest.mark.parametrize("log_scale", [20.0, 30.0, 33.0, 40.0, 80.0, 700.0, BOUND])
def test_discretized_gaussian_wide(log_scale):
    # Issue: inf at log-scale 33 (true NLL 38.8 nats), already off at 30, with no error.
    check_dg_truth([0.0, 0.5, -1.0, BOUND], [log_scale], [0, 1, 128, 254, 255])


@pytest.mark.parametrize("log_scale", [-30.0, -20.0, -13.0, -7.0, math.log(4 / 255)])
@pytest.mark.parametrize("mean", [0.0, 1 / 255, -1.0, 0.5, 30.0, -BOUND])
def test_discretized_gaussian_narrow(log_scale, mean):
    # Narrow Gaussians, means on a bin edge (1/255: P = 1/2 exactly), far away (NLL 5e33 nats, its
    # gradient the Mills ratio of the tail), or at the bin half-width where the kernel switches
    # between its narrow-bin series and the tail formula.
    check_dg_truth([mean], [log_scale], [0, 1, 127, 128, 254, 255])


@given(
    means=st.lists(
        st.one_of(st.floats(-1.25, 1.25, width=32), st.floats(-BOUND, BOUND, width=32)),
        min_size=1,
        max_size=4,
    ),
    log_scale=st.one_of(st.floats(-30.0, 10.0, width=32), st.floats(10.0, BOUND, width=32)),
    level=st.integers(0, 255),
)
def test_discretized_gaussian_random_in_contract(means, log_scale, level):
    check_dg_truth(means, [log_scale], [level, 255 - level])


@pytest.mark.parametrize(
    "mean,log_scale",
    [
        (0.3, 35.0),
        (0.3, 5.0),
        (0.01, math.log(4 / 255) + 1e-3),
        (0.01, math.log(4 / 255) - 1e-3),
        (2.0, -1.0),
        (0.2, -3.0),
        (0.0, -6.0),
    ],
)
def test_discretized_gaussian_gradcheck_across_branches(mean, log_scale):
    # float64 gradcheck on both sides of the narrow-bin / tail switch (delta = 1/4, |c| delta = 1/4).
    from elbits.ops.discretized_gaussian import discretized_gaussian_terms

    t = torch.tensor([[[0, 3, 128, 129, 200, 255]]], dtype=torch.uint8)
    p = torch.stack([torch.full((6,), mean), torch.full((6,), log_scale)]).view(1, 2, 6).double()
    p = (p + 1e-3 * torch.arange(6, dtype=torch.float64)).requires_grad_(True)
    mu = torch.zeros(1, 1, dtype=torch.float64)

    def f(q):
        return discretized_gaussian_terms(q, t, mu, mu).recon

    assert torch.autograd.gradcheck(f, (p,), eps=1e-6, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- Gaussian KL


def kl_truth(mu: float, logvar: float) -> tuple[float, float]:
    """(KL, d KL / d logvar) at 80 digits."""
    with mpmath.workdps(80):
        m, lv = mpmath.mpf(mu), mpmath.mpf(logvar)
        return float((m * m + mpmath.expm1(lv) - lv) / 2), float(mpmath.expm1(lv) / 2)


@pytest.mark.parametrize("mu", [0.0, 1e-3, BOUND, -BOUND])
@pytest.mark.parametrize("logvar", [-BOUND, -80.0, -1e-12, 0.0, 1e-7, 3e-3, -0.02, 80.0, 88.0])
def test_kl_extreme_latents(mu, logvar):
    # Far means, collapsed and exploding variances, and logvar near 0, where even expm1(lv) - lv
    # keeps only 2 eps / |lv| relative (the kernel takes the series there).
    m = f32([[mu]]).requires_grad_(True)
    lv = f32([[logvar]]).requires_grad_(True)
    terms = elbits.elbo_terms(torch.zeros(1, 2), torch.zeros(1, 2), m, lv)
    kl = terms.kl.double().item()
    want, want_dlv = kl_truth(float(m), float(lv))
    assert math.isfinite(kl) and abs(kl - want) <= 1e-7 * want
    terms.kl_total.sum().backward()
    assert abs(m.grad.item() - float(m)) <= 1e-7 * abs(float(m))
    assert abs(lv.grad.item() - want_dlv) <= 1e-7 * abs(want_dlv)


@given(mu=st.floats(-BOUND, BOUND, width=32), logvar=st.floats(-BOUND, 88.0, width=32))
def test_kl_random_in_contract(mu, logvar):
    m, lv = f32([[mu]]), f32([[logvar]])
    kl = elbits.elbo_terms(torch.zeros(1, 2), torch.zeros(1, 2), m, lv).kl.double().item()
    want = kl_truth(float(m), float(lv))[0]
    assert abs(kl - want) <= 1e-7 * want + 1e-45


# ------------------------------------------------- the figures of docs/numerics.md
# PYTHONPATH=python .venv/bin/python tests/test_hostile_numerics.py


def _edge_report() -> None:
    """Worst errors at the contract's edges: per-sample recon relative to float64 / mpmath, gradients
    relative to their largest magnitude."""
    gen = torch.Generator().manual_seed
    rows = []

    def vs_reference(label, name, p, t):
        got, g = fused(name, p, t)
        want, gw = reference(name, p, t)
        scale = want.abs()
        if name == "continuous_bernoulli":
            scale = ref.continuous_bernoulli_nll(p.double().reshape(-1, 1), t.reshape(-1, 1)).abs()
            scale = scale.view(p.shape[0], -1).sum(1)
        rows.append(
            (
                label,
                ((got - want).abs() / scale).max().item(),
                (g - gw).abs().max().item() / max(gw.abs().max().item(), 1.0),
            )
        )

    t = torch.randint(0, 256, (8, 64), generator=gen(2), dtype=torch.uint8)
    near = 20 * torch.randn(8, 256, 64, generator=gen(1)).abs()
    vs_reference("categorical256, logits in [1e4 - 60, 1e4]", "categorical256", (BOUND - near).float(), t)
    vs_reference("categorical256, logits in [-1e4, -1e4 + 60]", "categorical256", (near - BOUND).float(), t)
    vs_reference(
        "categorical256, logits uniform in [-1e4, 1e4]",
        "categorical256",
        BOUND * (2 * torch.rand(8, 256, 64, generator=gen(3)) - 1),
        t,
    )
    lead = torch.zeros(1, 256, 16)
    lead[:, 7] = 20.0
    vs_reference(
        "categorical256, target leads by 20 (nll 5e-7)",
        "categorical256",
        lead,
        torch.full((1, 16), 7, dtype=torch.uint8),
    )
    soft = torch.rand(16, 512, generator=gen(5))
    vs_reference(
        "bernoulli, logits uniform in [-1e4, 1e4], soft targets",
        "bernoulli",
        BOUND * (2 * torch.rand(16, 512, generator=gen(4)) - 1),
        soft,
    )
    vs_reference(
        "bernoulli, x = 1e4, t = 1 - 2^-24",
        "bernoulli",
        torch.full((1, 8), BOUND),
        torch.full((1, 8), 1 - 2.0**-24),
    )
    vs_reference(
        "continuous_bernoulli, eta uniform in [-1e4, 1e4]",
        "continuous_bernoulli",
        BOUND * (2 * torch.rand(16, 512, generator=gen(6)) - 1),
        soft,
    )
    vs_reference(
        "continuous_bernoulli, eta ~ 1e-3 N(0, 1)",
        "continuous_bernoulli",
        1e-3 * torch.randn(16, 512, generator=gen(8)),
        soft,
    )
    t3 = torch.randint(0, 256, (1, 3, 8, 8), generator=gen(3), dtype=torch.uint8)
    for base in (BOUND, 0.0):
        vs_reference(
            f"logistic_mixture K=10, logits {base:g} + 5 N(0, 1)",
            "logistic_mixture",
            mixture_params(10, 8, 3, logit_base=base, logit_spread=5.0),
            t3,
        )

    def vs_mpmath(label, means, log_scales):
        cases = [(m, s, lv) for m in means for s in log_scales for lv in (0, 1, 100, 128, 200, 254, 255)]
        p = f32([[[m], [s]] for m, s, _ in cases])
        got, g = fused("discretized_gaussian", p, torch.tensor([[[c[2]]] for c in cases], dtype=torch.uint8))
        e = ge = 0.0
        for i, (_, _, lv) in enumerate(cases):
            nll, dm, dls = dg_truth(lv, float(p[i, 0]), float(p[i, 1]))
            e = max(e, abs(got[i].item() - nll) / max(abs(nll), 1e-300))
            scale = max(abs(dm), abs(dls), 1.0)
            ge = max(ge, abs(g[i, 0, 0].item() - dm) / scale, abs(g[i, 1, 0].item() - dls) / scale)
        rows.append((label, e, ge))

    vs_mpmath("discretized_gaussian, log-scale 30", [0.0, 0.5, -1.0], [30.0])
    vs_mpmath(
        "discretized_gaussian, log-scales 33, 80, 700, 1e4",
        [0.0, 0.5, -1.0, BOUND],
        [33.0, 80.0, 700.0, BOUND],
    )
    vs_mpmath(
        "discretized_gaussian, log-scale -30, means 0, 1/255, 30, -1e4", [0.0, 1 / 255, 30.0, -BOUND], [-30.0]
    )
    vs_mpmath(
        "discretized_gaussian, log-scales -13..5, means in [-1, 1]",
        [-1.0, -0.3, 0.0, 0.2, 0.9],
        [-13.0, -7.0, -4.0, 0.0, 5.0],
    )
    for label, pairs in (
        (
            "gaussian KL, mu 0, logvar +-1e-12, 1e-9, 1e-7, 3e-3",
            [(0.0, v) for v in (1e-12, -1e-12, 1e-9, 1e-7, 3e-3)],
        ),
        (
            "gaussian KL, mu +-1e4, logvar -1e4, -80, 88",
            [(m, v) for m in (BOUND, -BOUND) for v in (-BOUND, -80.0, 88.0)],
        ),
    ):
        e = 0.0
        for mu, lv in pairs:
            m, v = f32([[mu]]), f32([[lv]])
            kl = elbits.elbo_terms(torch.zeros(1, 2), torch.zeros(1, 2), m, v).kl.double().item()
            want = kl_truth(float(m), float(v))[0]
            e = max(e, abs(kl - want) / want)
        rows.append((label, e, float("nan")))
    _, g = fused("categorical256", (BOUND - near).float(), t)
    print(f"categorical256 near 1e4: max |row sum of softmax - onehot| = {g.sum(1).abs().max().item():.1e}")
    print(f"{'case':64s} {'recon rel':>10s} {'grad/scale':>10s}")
    for label, e, ge in rows:
        print(f"{label:64s} {e:10.1e} {ge:10.1e}")


if __name__ == "__main__":
    _edge_report()
