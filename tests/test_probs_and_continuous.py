"""Bernoulli from probabilities, Gaussian and Laplace decoders (elbits/likelihoods/), against float64
references built on torch.nn.functional and torch.distributions; ELBOLoss settings."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import elbits
from elbits import reference as ref
from elbits.errors import InputError
from elbits.likelihoods import SaturationWarning
from elbits.likelihoods.continuous import discretized_laplace_logp
from elbits.likelihoods.kl import gaussian_kl, gaussian_kl_op

RANGES = [(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def latents(batch, z=3, dtype=torch.float32, seed=1):
    g = gen(seed)
    return torch.randn(batch, z, generator=g).to(dtype), torch.randn(batch, z, generator=g).to(dtype)


def image(shape, lo, hi, seed=0):
    """uint8 levels with every edge level present, and a mean in the data's range."""
    g = gen(seed)
    levels = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    levels.view(-1)[:2] = torch.tensor([0, 255], dtype=torch.uint8)[: levels.numel()]
    mean = lo + (hi - lo) * torch.rand(shape, generator=g)
    return levels, mean


def on_range(levels, lo, hi, dtype=torch.float32):
    return (levels.double() * ((hi - lo) / 255.0) + lo).to(dtype)


# ============================================================== Bernoulli from probabilities


@settings(max_examples=30)
@given(
    b=st.integers(1, 4),
    n=st.integers(1, 50),
    spread=st.floats(0.1, 15.0),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    tkind=st.sampled_from(["soft", "uint8", "bool"]),
    seed=st.integers(0, 2**16),
)
def test_probs_equal_binary_cross_entropy(b, n, spread, dtype, tkind, seed):
    g = gen(seed)
    p = torch.sigmoid(spread * torch.randn(b, 2, n, generator=g, dtype=dtype))
    u = torch.rand(b, 2, n, generator=g, dtype=dtype)
    t = {"soft": u, "uint8": (u < 0.5).to(torch.uint8), "bool": u < 0.5}[tkind]
    mu, lv = latents(b, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturationWarning)
        terms = elbits.elbo_terms(p, t, mu, lv, input="probs")
    want = F.binary_cross_entropy(p, t.to(dtype), reduction="none").flatten(1).sum(1)
    assert terms.recon.dtype == dtype and terms.dims == 2 * n
    torch.testing.assert_close(terms.recon, want, rtol=0, atol=0)
    torch.testing.assert_close(terms.recon.double(), ref.bernoulli_probs_nll(p, t), rtol=1e-6, atol=1e-4)


def test_probs_kl_is_the_fused_kl():
    x = torch.randn(3, 1, 4, 4)
    t = (torch.rand(3, 1, 4, 4, generator=gen(2)) < 0.5).float()
    mu, lv = latents(3)
    probs = elbits.elbo_terms(torch.sigmoid(x), t, mu, lv, input="probs")
    logits = elbits.elbo_terms(x, t, mu, lv)
    assert torch.equal(probs.kl, logits.kl)  # one kernel, bit for bit
    torch.testing.assert_close(probs.recon, logits.recon, rtol=1e-5, atol=1e-4)


def test_probs_half_precision_is_computed_in_float32():
    p = torch.sigmoid(torch.randn(2, 10, generator=gen(4))).to(torch.bfloat16).requires_grad_(True)
    t = torch.rand(2, 10, generator=gen(5))
    terms = elbits.elbo_terms(p, t, *latents(2), input="probs")
    assert terms.recon.dtype == torch.float32
    torch.testing.assert_close(terms.recon, F.binary_cross_entropy(p.float(), t, reduction="none").sum(1))
    terms.recon.sum().backward()
    assert p.grad is not None and p.grad.dtype == torch.bfloat16


def probs_case(b=2, n=6, seed=0):
    g = gen(seed)
    p = (0.05 + 0.9 * torch.rand(b, n, generator=g, dtype=torch.float64)).requires_grad_(True)
    t = torch.rand(b, n, generator=g, dtype=torch.float64)
    mu, lv = (x.double().requires_grad_(True) for x in latents(b))
    return p, t, mu, lv


def probs_nelbo(p, t, mu, lv):
    return elbits.elbo_terms(p, t, mu, lv, input="probs").nelbo


def test_probs_gradcheck_and_double_backward():
    p, t, mu, lv = probs_case()
    f = lambda a, m, v: probs_nelbo(a, t, m, v)  # noqa: E731
    assert torch.autograd.gradcheck(f, (p, mu, lv), check_forward_ad=True, check_batched_grad=True)
    assert torch.autograd.gradgradcheck(f, (p, mu, lv))


def test_probs_functorch_transforms_match_reference():
    p, t, mu, lv = (x.detach() for x in probs_case())

    def f(a, m, v):
        return probs_nelbo(a, t, m, v).sum()

    def g(a, m, v):
        return ref.elbo_terms(a, t, m, v, input="probs").nelbo.sum()

    tangents = tuple(torch.randn_like(x) for x in (p, mu, lv))
    torch.testing.assert_close(
        torch.func.jvp(f, (p, mu, lv), tangents), torch.func.jvp(g, (p, mu, lv), tangents)
    )
    torch.testing.assert_close(
        torch.func.grad(f, argnums=(0, 1, 2))(p, mu, lv), torch.func.grad(g, argnums=(0, 1, 2))(p, mu, lv)
    )
    torch.testing.assert_close(
        torch.func.hessian(f, argnums=2)(p, mu, lv), torch.func.hessian(g, argnums=2)(p, mu, lv)
    )
    per = torch.func.vmap(lambda a, m, v: probs_nelbo(a[None], t[:1], m[None], v[None]))(p, mu, lv)
    torch.testing.assert_close(per[:, 0], probs_nelbo(p, t[:1].expand_as(t), mu, lv))


def test_probs_saturation_warns_and_reads_100_nats():
    # float32 sigmoid(40) is exactly 1: against target 0 the clamped log counts 100 nats, not 40.
    logits = torch.tensor([[40.0, 40.0, -40.0, 3.0]])
    t = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    mu, lv = latents(1)
    with pytest.warns(SaturationWarning, match="clamps their log at -100") as caught:
        probs = elbits.elbo_terms(torch.sigmoid(logits), t, mu, lv, input="probs").recon
    assert caught[0].filename == __file__  # points at the caller, not at elbits
    exact = elbits.elbo_terms(logits, t, mu, lv).recon
    assert probs.item() == pytest.approx(100.0 + 40.0 + F.softplus(torch.tensor(3.0)).item(), rel=1e-6)
    assert exact.item() == pytest.approx(40.0 + 40.0 + F.softplus(torch.tensor(3.0)).item(), rel=1e-6)


def test_probs_without_saturation_do_not_warn():
    p = torch.tensor([[1.0, 0.0, 0.5]])
    t = torch.tensor([[1.0, 0.0, 1.0]])  # exact 0/1 on the right side: nothing is clamped
    with warnings.catch_warnings():
        warnings.simplefilter("error", SaturationWarning)
        elbits.elbo_terms(p, t, *latents(1), input="probs")


def test_probs_through_elboloss():
    x = torch.randn(4, 1, 3, 3, generator=gen(6))
    t = (torch.rand(4, 1, 3, 3, generator=gen(7)) < 0.5).to(torch.uint8)
    mu, lv = latents(4)
    crit = elbits.ELBOLoss(input="probs", beta=2.0, reduction="sum")
    want = ref.elbo_terms(torch.sigmoid(x), t, mu, lv, input="probs")
    assert crit(torch.sigmoid(x), t, mu, lv).item() == pytest.approx(
        (want.recon + 2 * want.kl_total).sum().item(), rel=1e-6
    )
    assert "input='probs'" in repr(crit)


# ------------------------------------------------------------ hostile inputs: probabilities


@pytest.mark.parametrize("value", [1.5, -0.1, math.nan, math.inf])
def test_hostile_probs_out_of_range(value):
    p = torch.full((2, 3), 0.5)
    p[1, 2] = value
    with pytest.raises(InputError, match=r"probs has values outside \[0, 1\]"):
        elbits.elbo_terms(p, torch.zeros(2, 3), *latents(2), input="probs")


@pytest.mark.parametrize(
    "target",
    [torch.full((2, 3), 1.5), torch.full((2, 3), math.nan), torch.full((2, 3), 2, dtype=torch.uint8)],
)
def test_hostile_probs_target_out_of_range(target):
    with pytest.raises(InputError, match="target has"):
        elbits.elbo_terms(torch.full((2, 3), 0.5), target, *latents(2), input="probs")


def test_hostile_probs_check_finite_false_gives_nan_for_that_sample_only():
    p = torch.full((2, 3), 0.5)
    p[1, 0] = math.nan
    recon = elbits.elbo_terms(p, torch.zeros(2, 3), *latents(2), input="probs", check_finite=False).recon
    assert math.isnan(recon[1].item()) and recon[0].item() == pytest.approx(3 * math.log(2.0))


@pytest.mark.parametrize("likelihood", ["categorical256", "gaussian", "continuous_bernoulli"])
def test_hostile_probs_for_another_likelihood(likelihood):
    with pytest.raises(InputError, match="input='probs' is for likelihood 'bernoulli'"):
        elbits.ELBOLoss(likelihood, input="probs")


@pytest.mark.parametrize("value", ["prob", "sigmoid", None, 1])
def test_hostile_unknown_input(value):
    with pytest.raises(InputError, match="input must be one of"):
        elbits.elbo_terms(torch.zeros(2, 3), torch.zeros(2, 3), *latents(2), input=value)


# ============================================================== the KL op on its own


def test_kl_op_values_modes_and_opcheck():
    mu, lv = (x.double().requires_grad_(True) for x in latents(3, z=4))
    kl = gaussian_kl(mu, lv, torch.float64)
    torch.testing.assert_close(kl, ref.gaussian_kl(mu, lv))
    f = lambda m, v: gaussian_kl(m, v, torch.float64)  # noqa: E731
    assert torch.autograd.gradcheck(f, (mu, lv), check_forward_ad=True, check_batched_grad=True)
    assert torch.autograd.gradgradcheck(f, (mu, lv))  # d2 KL / d logvar2 = exp(logvar) / 2 included
    many = torch.stack([mu.detach(), 2 * mu.detach()])
    per = torch.func.vmap(lambda m: gaussian_kl(m, lv.detach(), torch.float64))(many)  # logvar not vmapped
    torch.testing.assert_close(per, torch.stack([ref.gaussian_kl(m, lv.detach()) for m in many]))
    torch.library.opcheck(gaussian_kl_op, (mu, lv, True, True))
    torch.library.opcheck(gaussian_kl_op, (mu.float(), lv.float(), False, True))


def test_hostile_kl_nonfinite_latents():
    mu, lv = latents(2)
    lv[0, 1] = math.inf
    with pytest.raises(ValueError, match="logvar contains NaN or Inf"):
        elbits.elbo_terms(torch.rand(2, 3), torch.rand(2, 3), mu, lv, "gaussian", scale=0.1)


# ============================================================== Gaussian and Laplace densities


def scale_kwargs(kind, mean, seed=0):
    g = gen(seed)
    if kind == "float":
        return {"scale": 0.3}
    if kind == "scalar":
        return {"scale": torch.tensor(0.2, dtype=mean.dtype)}
    if kind == "channel":
        return {
            "scale": 0.1 + torch.rand(1, mean.shape[1], *([1] * (mean.dim() - 2)), generator=g).to(mean.dtype)
        }
    return {"log_scale": (torch.randn(mean.shape, generator=g) - 1.0).to(mean.dtype)}


@settings(max_examples=30)
@given(
    b=st.integers(1, 3),
    c=st.integers(1, 3),
    n=st.integers(1, 20),
    kind=st.sampled_from(["float", "scalar", "channel", "subpixel"]),
    likelihood=st.sampled_from(["gaussian", "laplace"]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    spread=st.floats(0.01, 10.0),
    seed=st.integers(0, 2**16),
)
def test_density_matches_torch_distributions(b, c, n, kind, likelihood, dtype, spread, seed):
    g = gen(seed)
    mean = (spread * torch.randn(b, c, n, generator=g)).to(dtype)
    target = (spread * torch.randn(b, c, n, generator=g)).to(dtype)
    kw = scale_kwargs(kind, mean, seed)
    mu, lv = latents(b, dtype=dtype)
    terms = elbits.elbo_terms(mean, target, mu, lv, likelihood, **kw)
    want = ref.elbo_terms(mean, target, mu, lv, likelihood, **kw)
    assert terms.recon.dtype == dtype and terms.dims == c * n
    rtol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(terms.recon.double(), want.recon, rtol=rtol, atol=rtol * c * n)
    torch.testing.assert_close(terms.kl.double(), want.kl, rtol=rtol, atol=1e-6)


def test_density_is_mse_and_l1():
    # The losses people train, in nats: SSE/(2 sigma^2) + D log(sigma sqrt(2 pi)); L1/b + D log(2b).
    mean, target = torch.rand(3, 1, 8, 8, generator=gen(1)), torch.rand(3, 1, 8, 8, generator=gen(2))
    mu, lv = latents(3)
    d = 64
    sse = F.mse_loss(mean, target, reduction="none").flatten(1).sum(1)
    l1 = F.l1_loss(mean, target, reduction="none").flatten(1).sum(1)
    g = elbits.elbo_terms(mean, target, mu, lv, "gaussian", scale=0.1).recon
    lap = elbits.elbo_terms(mean, target, mu, lv, "laplace", scale=0.1).recon
    torch.testing.assert_close(g, sse / (2 * 0.01) + d * math.log(0.1 * math.sqrt(2 * math.pi)))
    torch.testing.assert_close(lap, l1 / 0.1 + d * math.log(0.2))


def test_density_depends_on_the_datas_units():
    # Data in [0, 1] vs the same data in [-1, 1] (x' = 2x - 1, sigma' = 2 sigma): D log 2 nats apart.
    levels, mean = image((2, 3, 4, 4), 0.0, 1.0)
    x = on_range(levels, 0.0, 1.0)
    mu, lv = latents(2)
    a = elbits.elbo_terms(mean, x, mu, lv, "gaussian", scale=0.1).recon
    b = elbits.elbo_terms(2 * mean - 1, 2 * x - 1, mu, lv, "gaussian", scale=0.2).recon
    torch.testing.assert_close(b - a, torch.full((2,), 48 * math.log(2.0)), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
@pytest.mark.parametrize("kind", ["scalar", "channel", "subpixel"])
def test_density_gradcheck(likelihood, kind):
    g = gen(8)
    mean = torch.randn(2, 2, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    target = torch.randn(2, 2, 3, generator=g, dtype=torch.float64)
    ((name, s),) = scale_kwargs(kind, mean).items()
    s = s.detach().requires_grad_(True)
    mu, lv = (x.double().requires_grad_(True) for x in latents(2))

    def f(m, sc, a, v):
        return elbits.elbo_terms(m, target, a, v, likelihood, **{name: sc}).nelbo

    assert torch.autograd.gradcheck(f, (mean, s, mu, lv), check_forward_ad=True, check_batched_grad=True)
    assert torch.autograd.gradgradcheck(f, (mean, s, mu, lv))


# ============================================================== discretized (8-bit code lengths)


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
@pytest.mark.parametrize("rng", RANGES)
@pytest.mark.parametrize("tkind", ["uint8", "int64", "float32", "float64"])
def test_discretized_matches_reference(likelihood, rng, tkind):
    levels, mean = image((3, 2, 5, 5), *rng)
    kinds = {
        "uint8": levels,
        "int64": levels.long(),
        "float32": on_range(levels, *rng, torch.float32),
        "float64": on_range(levels, *rng, torch.float64),
    }
    target = kinds[tkind]
    width = rng[1] - rng[0]
    # scales >= 5% of the range: the float64 reference's erfc differences underflow beyond ~26 sigma
    for kw in (
        {"scale": 0.05 * width},
        {"log_scale": torch.log(width * (0.05 + 0.2 * torch.rand(3, 2, 5, 5)))},
    ):
        mu, lv = latents(3)
        terms = elbits.elbo_terms(mean, target, mu, lv, likelihood, discretize=rng, **kw)
        want = ref.elbo_terms(mean, target, mu, lv, likelihood, discretize=rng, **kw)
        torch.testing.assert_close(terms.recon.double(), want.recon, rtol=2e-5, atol=1e-3)
        assert terms.dims == 50


@settings(max_examples=30)
@given(
    b=st.integers(1, 3),
    n=st.integers(1, 30),
    rng=st.sampled_from(RANGES),
    likelihood=st.sampled_from(["gaussian", "laplace"]),
    frac=st.floats(0.05, 0.5),
    per_subpixel=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_discretized_hypothesis(b, n, rng, likelihood, frac, per_subpixel, dtype, seed):
    # scales from 5% of the range up (where the float64 CDF-difference reference keeps its digits)
    lo, hi = rng
    levels, mean = image((b, n), lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), seed)
    mean = mean.to(dtype)
    g = gen(seed + 1)
    scale = frac * (hi - lo) * (0.5 + torch.rand(b, n, generator=g, dtype=dtype) if per_subpixel else 1.0)
    kw = {"log_scale": torch.log(scale)} if per_subpixel else {"scale": float(scale)}
    mu, lv = latents(b, dtype=dtype)
    terms = elbits.elbo_terms(mean, levels, mu, lv, likelihood, discretize=rng, **kw)
    want = ref.elbo_terms(mean, levels, mu, lv, likelihood, discretize=rng, **kw)
    rtol = 1e-9 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(terms.recon.double(), want.recon, rtol=rtol, atol=rtol * n)


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
def test_discretized_is_the_same_in_every_unit(likelihood):
    levels, mean01 = image((2, 1, 6, 6), 0.0, 1.0, seed=3)
    mu, lv = latents(2)
    got = [
        elbits.elbo_terms(
            mean01 * (hi - lo) + lo, levels, mu, lv, likelihood, scale=0.07 * (hi - lo), discretize=(lo, hi)
        ).recon
        for lo, hi in RANGES
    ]
    for other in got[1:]:
        torch.testing.assert_close(other, got[0], rtol=2e-5, atol=1e-3)


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
@pytest.mark.parametrize(
    "mean, scale", [(0.5, 0.1), (0.0, 0.003), (1.0, 2.0), (0.3, 1e-4), (-3.0, 0.2), (0.77, 40.0)]
)
def test_discretized_probabilities_sum_to_one(likelihood, mean, scale):
    every = torch.arange(256).view(256, 1)
    mu, lv = latents(256)
    recon = elbits.elbo_terms(
        torch.full((256, 1), mean, dtype=torch.float64),
        every,
        mu.double(),
        lv.double(),
        likelihood,
        scale=scale,
        discretize=(0, 1),
    ).recon
    assert torch.logsumexp(-recon, 0).item() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
def test_discretized_is_density_plus_bin_width_for_wide_scales(likelihood):
    # -log P(bin) ~ -log p(x) - log(bin width) when sigma spans many levels (interior levels only).
    levels = torch.randint(40, 216, (2, 1, 8, 8), generator=gen(9), dtype=torch.uint8)
    x = on_range(levels, 0.0, 1.0, torch.float64)
    mean = (x + 0.05 * torch.randn(x.shape, generator=gen(10), dtype=torch.float64)).clamp(0, 1)
    mu, lv = latents(2, dtype=torch.float64)
    dens = elbits.elbo_terms(mean, x, mu, lv, likelihood, scale=0.2).recon
    disc = elbits.elbo_terms(mean, levels, mu, lv, likelihood, scale=0.2, discretize=(0, 1)).recon
    torch.testing.assert_close(disc, dens + 64 * math.log(255.0), rtol=1e-3, atol=0.0)


@pytest.mark.parametrize("scales_away", [0.0, 0.4, 3.0, 30.0, 300.0])
@pytest.mark.parametrize("log_b", [-10.0, -5.0, -1.0, 1.0, 7.0])
def test_discretized_laplace_float32_in_the_tails(scales_away, log_b):
    # float32 log-space formula vs float64 CDF differences, from the mean to far tails and from
    # bins far wider than b (log b = -10) to b far wider than the data (7), in level units (data
    # 0..255), where the bin edges are exact in float32 and only the formula's error remains.
    b = math.exp(log_b)
    levels = torch.arange(256).view(1, 256)
    mean = torch.full((1, 256), 127.5) + torch.linspace(-1, 1, 256).view(1, 256) * scales_away * b
    got = -discretized_laplace_logp(levels, mean, torch.tensor(log_b), 0.0, 255.0)
    want = torch.stack(
        [
            ref.discretized_laplace_nll(mean[:, i : i + 1].double(), levels[:, i : i + 1], b, 0.0, 255.0)[0]
            for i in range(256)
        ]
    )
    assert torch.isfinite(got).all()
    ok = want < 650  # the reference's exponentials reach float64's subnormals (e^-708) beyond
    assert ok.sum() >= 2
    torch.testing.assert_close(got[0].double()[ok], want[ok], rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
def test_discretized_gradcheck(likelihood):
    levels, mean = image((2, 1, 3, 3), 0.0, 1.0, seed=5)
    mean = mean.double().requires_grad_(True)
    ls = torch.full((2, 1, 3, 3), -2.5, dtype=torch.float64).requires_grad_(True)
    mu, lv = (x.double().requires_grad_(True) for x in latents(2))

    def f(m, s, a, v):
        return elbits.elbo_terms(m, levels, a, v, likelihood, log_scale=s, discretize=(0, 1)).nelbo

    assert torch.autograd.gradcheck(f, (mean, ls, mu, lv))


def test_discretized_laplace_gradients_finite_everywhere():
    levels = torch.arange(256).view(1, 256)
    for offset in (-1e4, -1.0, 0.0, 1.0, 1e4):
        for log_b in (-30.0, -5.0, 0.0, 30.0):
            mean = (torch.rand(1, 256, generator=gen(1)) + offset).requires_grad_(True)
            ls = torch.tensor(log_b, requires_grad=True)
            discretized_laplace_logp(levels, mean, ls, 0.0, 1.0).sum().backward()
            assert torch.isfinite(mean.grad).all() and torch.isfinite(ls.grad).all(), (offset, log_b)


# ============================================================== ELBOLoss with a scale


def test_elboloss_learns_a_scalar_sigma():
    levels, mean = image((4, 1, 6, 6), 0.0, 1.0, seed=11)
    x = on_range(levels, 0.0, 1.0)
    mu, lv = latents(4)
    log_sigma = torch.nn.Parameter(torch.tensor(0.0))
    crit = elbits.ELBOLoss("gaussian", log_scale=log_sigma)
    assert list(crit.parameters()) == [log_sigma]
    opt = torch.optim.Adam(crit.parameters(), lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        crit(mean, x, mu, lv).backward()
        opt.step()
    # the maximum-likelihood sigma of a fixed mean is the root mean square error
    rmse = F.mse_loss(mean, x).sqrt().item()
    assert math.exp(log_sigma.item()) == pytest.approx(rmse, rel=2e-2)


def test_elboloss_per_call_log_scale_and_buffer():
    levels, mean = image((2, 1, 4, 4), -1.0, 1.0)
    mu, lv = latents(2)
    crit = elbits.ELBOLoss("laplace", scale=torch.tensor(0.1), discretize=(-1, 1), reduction="sum")
    assert "scale" in dict(crit.named_buffers())
    ls = torch.full((2, 1, 4, 4), math.log(0.3))
    got = crit(mean, levels, mu, lv, log_scale=ls)
    want = ref.elbo_terms(mean, levels, mu, lv, "laplace", scale=0.3, discretize=(-1, 1))
    assert got.item() == pytest.approx(want.nelbo.sum().item(), rel=1e-5)
    want = ref.elbo_terms(mean, levels, mu, lv, "laplace", scale=0.1, discretize=(-1, 1))
    assert crit(mean, levels, mu, lv).item() == pytest.approx(want.nelbo.sum().item(), rel=1e-5)


def test_compile_fullgraph_matches_eager():
    levels, mean = image((2, 1, 4, 4), 0.0, 1.0)
    x = on_range(levels, 0.0, 1.0)
    mu, lv = latents(2)

    def f(m, s):
        a = elbits.elbo_terms(m, x, mu, lv, "gaussian", log_scale=s)
        b = elbits.elbo_terms(m, levels, mu, lv, "laplace", log_scale=s, discretize=(0, 1))
        c = elbits.elbo_terms(m, x, mu, lv, input="probs")
        # recon + kl.sum(1), not .nelbo: Dynamo before torch 2.13 cannot read a NamedTuple's property
        return sum(t.recon + t.kl.sum(1) for t in (a, b, c)).mean()

    grads = []
    for fn in (f, torch.compile(f, fullgraph=True)):
        m = mean.clone().requires_grad_(True)
        s = torch.tensor(-1.0, requires_grad=True)
        loss = fn(m, s)
        loss.backward()
        grads.append((loss.detach(), m.grad, s.grad))
    torch.testing.assert_close(grads[0], grads[1])


# ------------------------------------------------------------ hostile inputs: continuous


def cont(likelihood="gaussian", **kw):
    mean, target = torch.rand(2, 1, 3, 3), torch.rand(2, 1, 3, 3)
    return elbits.elbo_terms(mean, kw.pop("target", target), *latents(2), likelihood, **kw)


@pytest.mark.parametrize("kw", [{}, {"scale": 0.1, "log_scale": torch.zeros(())}], ids=["neither", "both"])
def test_hostile_scale_missing_or_twice(kw):
    with pytest.raises(InputError, match="needs exactly one of scale="):
        cont(**kw)


@pytest.mark.parametrize("value", [0.0, -0.1, math.nan, math.inf, True, "0.1", [0.1]])
def test_hostile_scale_value(value):
    with pytest.raises(InputError, match="scale"):
        cont("laplace", scale=value)


@pytest.mark.parametrize(
    "name, value",
    [
        ("scale", torch.tensor([0.1, -0.1]).view(1, 2, 1, 1)[:, :1] * -1),
        ("scale", torch.tensor(math.nan)),
        ("log_scale", torch.tensor(math.inf)),
    ],
)
def test_hostile_scale_tensor_values(name, value):
    with pytest.raises(InputError, match="scale"):
        cont(**{name: value})


def test_hostile_scale_tensor_values_with_check_finite_false_give_nan():
    assert torch.isnan(cont(scale=torch.tensor(-1.0), check_finite=False).recon).all()


@pytest.mark.parametrize("shape", [(4,), (2, 1, 3, 4), (2, 2, 3, 3), (4, 1, 1, 1, 1)])
def test_hostile_scale_tensor_shape(shape):
    with pytest.raises(InputError, match="does not broadcast to mean's shape"):
        cont(log_scale=torch.zeros(shape))


def test_hostile_scale_tensor_device_and_dtype():
    with pytest.raises(ValueError, match="on meta"):
        cont(log_scale=torch.zeros((), device="meta"))
    with pytest.raises(TypeError, match="log_scale must have dtype"):
        cont(log_scale=torch.zeros((), dtype=torch.int64))


def test_hostile_log_scale_not_a_tensor():
    with pytest.raises(InputError, match="log_scale must be a tensor"):
        cont(log_scale=-2.0)


@pytest.mark.parametrize("value", ["(0, 1)", (0, 1, 2), (1, 0), (0, math.nan), (0, math.inf), 255, (0, "x")])
def test_hostile_discretize(value):
    with pytest.raises(InputError, match="discretize must be"):
        cont(scale=0.1, discretize=value)


@pytest.mark.parametrize(
    "target, match",
    [
        (torch.full((2, 1, 3, 3), 0.5), "off the 256-level grid"),
        (torch.full((2, 1, 3, 3), 1.01), "outside discretize"),
        (torch.full((2, 1, 3, 3), math.nan), "outside discretize"),
        (torch.full((2, 1, 3, 3), 256), "levels outside 0..255"),
        (torch.full((2, 1, 3, 3), -1), "levels outside 0..255"),
    ],
)
def test_hostile_discretized_targets(target, match):
    with pytest.raises(InputError, match=match):
        cont("laplace", scale=0.1, discretize=(0, 1), target=target)


@pytest.mark.parametrize(
    "dtype, discretize",
    [
        (torch.uint8, None),
        (torch.bool, None),
        (torch.int64, None),
        (torch.float16, (0, 1)),
        (torch.bfloat16, (0, 1)),
        (torch.bool, (0, 1)),
    ],
)
def test_hostile_target_dtype(dtype, discretize):
    # a density needs float data; 8-bit levels need uint8/int64 or floats that hold them exactly
    with pytest.raises(TypeError, match="target must have dtype"):
        cont(scale=0.1, target=torch.zeros((2, 1, 3, 3), dtype=dtype), discretize=discretize)


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
@pytest.mark.parametrize("where", ["mean", "target"])
def test_hostile_nonfinite_mean_or_target(likelihood, where):
    mean, target = torch.rand(2, 1, 3, 3), torch.rand(2, 1, 3, 3)
    (mean if where == "mean" else target)[1, 0, 1, 1] = math.nan
    with pytest.raises(InputError, match=f"{where} contains NaN or Inf"):
        elbits.elbo_terms(mean, target, *latents(2), likelihood, scale=0.1)
    recon = elbits.elbo_terms(mean, target, *latents(2), likelihood, scale=0.1, check_finite=False).recon
    assert torch.isfinite(recon[0]) and torch.isnan(recon[1])


def test_hostile_overflow_is_named():
    with pytest.raises(InputError, match="overflowed float32"):
        cont(scale=1e-30, target=torch.full((2, 1, 3, 3), 1e10))


@pytest.mark.parametrize("kw", [{"scale": 0.1}, {"log_scale": torch.zeros(())}, {"discretize": (0, 1)}])
@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical256", "discretized_gaussian"])
def test_hostile_continuous_settings_for_another_likelihood(kw, likelihood):
    with pytest.raises(InputError, match="is for likelihoods \\['gaussian', 'laplace'\\]"):
        elbits.ELBOLoss(likelihood, **kw)


def test_hostile_mean_shape_mismatch():
    with pytest.raises(ValueError, match="target must have the shape of mean"):
        cont(scale=0.1, target=torch.rand(2, 1, 3, 4))


# ============================================================== ELBOLoss constructor settings


@pytest.mark.parametrize(
    "beta", [math.inf, -math.inf, math.nan, -1.0, -1e-12, "1", None, True, [1.0], torch.tensor([1.0, 2.0])]
)
def test_hostile_elboloss_beta(beta):
    with pytest.raises(InputError, match="beta must be a finite number >= 0"):
        elbits.ELBOLoss(beta=beta)


@pytest.mark.parametrize("beta", [0, 0.0, 4, 1e-3, torch.tensor(2.5)])
def test_elboloss_beta_accepts_numbers(beta):
    assert elbits.ELBOLoss(beta=beta).beta == float(beta)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"reduction": "none"}, "reduction must be"),
        ({"reduction": None}, "reduction must be"),
        ({"check_every": 0}, "check_every must be"),
        ({"check_every": 2.5}, "check_every must be"),
        ({"check_every": True}, "check_every must be"),
        ({"likelihood": "gauss"}, "likelihood must be one of"),
        ({"likelihood": None}, "likelihood must be one of"),
        ({"check_finite": "yes"}, "check_finite must be True or False"),
        ({"inplace_grad": 1}, "inplace_grad must be True or False"),
        ({"likelihood": "gaussian", "scale": -1.0}, "scale"),
        ({"likelihood": "laplace", "scale": 0.1, "log_scale": torch.zeros(())}, "exactly one of"),
        ({"likelihood": "laplace", "discretize": (1, 0)}, "discretize must be"),
    ],
)
def test_hostile_elboloss_settings(kw, match):
    with pytest.raises(InputError, match=match):
        elbits.ELBOLoss(**kw)


def test_hostile_discretized_targets_unchecked_under_compile_give_nan():
    # Under torch.compile nothing is read back on the host: a bad target makes its sample NaN.
    mean, lv = torch.rand(2, 1, 3, 3), torch.zeros(2, 1)
    target = torch.zeros(2, 1, 3, 3)
    target[1, 0, 0, 0] = 3.0

    def f(m, t):
        return elbits.elbo_terms(m, t, lv, lv, "laplace", scale=0.1, discretize=(0, 1)).recon

    recon = torch.compile(f, fullgraph=True)(mean, target)
    assert torch.isfinite(recon[0]) and torch.isnan(recon[1])
