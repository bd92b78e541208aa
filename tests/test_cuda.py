"""CUDA kernels against the float64 reference: skipped without a GPU, unchanged with one.

The per-element math is shared with the CPU (csrc/include/elbits), so the CPU tests
cover it everywhere; these check the CUDA loops, reductions, dispatch and streams.
"""

import math

import pytest
import torch

import elbits
from elbits import reference as ref
from elbits._core import core

needs_gpu = pytest.mark.skipif(
    not (core.has_cuda and torch.cuda.is_available()), reason="needs a CUDA build of elbits and a GPU"
)
DEVICES = ["cpu", pytest.param("cuda", marks=needs_gpu)]


def make(shape, z, device, ldtype=torch.float32, tdtype=torch.uint8, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(ldtype)
    target = (torch.rand(shape, generator=g) < 0.3).to(tdtype)
    mu = torch.randn(shape[0], z, generator=g, dtype=torch.float64).to(ldtype)
    logvar = torch.randn(shape[0], z, generator=g, dtype=torch.float64).to(ldtype)
    return [t.to(device) for t in (logits, target, mu, logvar)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ldtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5, 7), (17, 1, 64, 64), (2, 40000)])
def test_bernoulli_values_and_grads(device, ldtype, shape):
    logits, target, mu, logvar = make(shape, 6, device, ldtype)
    for t in (logits, mu, logvar):
        t.requires_grad_(True)
    terms = elbits.elbo_terms(logits, target, mu, logvar)
    assert terms.recon.device.type == device
    (terms.recon.sum() + terms.kl.sum()).backward()
    want = ref.elbo_terms(*(t.detach().cpu() for t in (logits, target, mu, logvar)))
    rtol = 1e-12 if ldtype == torch.float64 else 2e-6
    torch.testing.assert_close(terms.recon.cpu().double(), want.recon, rtol=rtol, atol=1e-4)
    torch.testing.assert_close(terms.kl.cpu().double(), want.kl, rtol=1e-6, atol=1e-6)
    x64 = logits.detach().cpu().double()
    sig = torch.sigmoid(x64) - target.cpu().double()
    atol = {torch.float32: 1e-6, torch.float64: 1e-12}.get(ldtype, 1e-2)
    torch.testing.assert_close(logits.grad.cpu().double(), sig, rtol=0, atol=atol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["misaligned_base", "odd_row_stride", "odd_row_length", "packed"])
@pytest.mark.parametrize("ldtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("tdtype", [torch.uint8, torch.float32, torch.float64])
def test_bernoulli_packed_and_unpacked_layouts(device, layout, ldtype, tdtype):
    """The CUDA loop reads 16-byte packs only when n, the row strides and the base pointers allow it;
    every other layout must take the element-wise loop and give the same answer."""
    g = torch.Generator().manual_seed(5)
    b, n = 5, 4 * 4100  # two chunks per row on the GPU
    width = {"odd_row_stride": n + 3, "odd_row_length": n - 1}.get(layout, n)
    flat = torch.randn(b * (width + 1) + 1, generator=g, dtype=torch.float64).to(ldtype)
    tflat = (torch.rand(b * (width + 1) + 1, generator=g) < 0.4).to(tdtype)
    if layout == "misaligned_base":
        x, t = flat[1 : b * n + 1].view(b, n), tflat[1 : b * n + 1].view(b, n)
    elif layout == "odd_row_stride":
        x, t = flat[: b * width].view(b, width)[:, :n], tflat[: b * width].view(b, width)[:, :n]
    else:
        x, t = flat[: b * width].view(b, width), tflat[: b * width].view(b, width)
    mu = torch.zeros(b, 2, dtype=ldtype)
    leaf = x.to(device).requires_grad_(True)
    terms = elbits.elbo_terms(leaf, t.to(device), mu.to(device), mu.to(device))
    # row 0's upstream gradient is the prescale the forward stored (its rows are skipped), the others not
    w = torch.tensor([1.0 / b, 0.5, 2.0, 1.0, 3.0], dtype=torch.float32)
    (terms.recon * w.to(device)).sum().backward()
    want = ref.elbo_terms(x.double(), t, mu.double(), mu.double())
    rtol = 1e-12 if ldtype == torch.float64 else 2e-6
    torch.testing.assert_close(terms.recon.detach().cpu().double(), want.recon, rtol=rtol, atol=1e-3)
    atol = 1e-12 if ldtype == torch.float64 else (3e-6 if ldtype == torch.float32 else 3e-2)
    expect = w.double()[:, None] * (torch.sigmoid(x.double()) - t.double())
    torch.testing.assert_close(leaf.grad.cpu().double(), expect, rtol=0, atol=atol)
    with torch.no_grad():  # no gradient buffer: the packed loop must not touch one
        again = elbits.elbo_terms(x.to(device), t.to(device), mu.to(device), mu.to(device)).recon
    torch.testing.assert_close(again.cpu(), terms.recon.detach().cpu())


@needs_gpu
def test_bench_cli_on_cuda(capsys):
    import json

    from elbits.cli import main

    assert main(["bench", "bernoulli-256", "--device", "cuda", "--rounds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["machine"]["device"] == torch.cuda.get_device_name()
    assert {r["impl"] for r in out["results"]} == {"fused", "eager", "compile"}
    for r in out["results"]:
        for key in ("median_ms", "allocated_mb", "gb_per_s", "kernel_ms", "vs_compile", "vs_eager"):
            # fields present and sane; no timing relations, which a busy or odd GPU may break
            assert isinstance(r[key], float) and math.isfinite(r[key]), (key, r)
        for key in ("median_ms", "gb_per_s", "kernel_ms", "vs_compile", "vs_eager"):
            assert r[key] > 0, (key, r)
        assert r["allocated_mb"] >= 0, r


@needs_gpu
def test_cuda_deterministic_and_on_current_stream():
    logits, target, mu, logvar = make((64, 1, 64, 64), 10, "cuda")
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        a = elbits.elbo_terms(logits, target, mu, logvar).recon
        b = elbits.elbo_terms(logits, target, mu, logvar).recon
    stream.synchronize()
    assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli"])
def test_check_finite_false_reports_nothing_for_nan(device, likelihood):
    """NaN in the logits and in mu/logvar with check_finite=False: no error now, and on CUDA
    none recorded for a later check_device_errors (as on the CPU, where nothing raises)."""
    logits, target, mu, logvar = make((2, 8), 3, "cpu", tdtype=torch.float32)
    logits[0, 0] = mu[1, 0] = logvar[0, 2] = float("nan")
    args = (t.to(device) for t in (logits, target, mu, logvar))
    terms = elbits.elbo_terms(*args, likelihood=likelihood, check_finite=False)
    assert terms.recon.isnan().any() and terms.kl.isnan().any()  # NaN flows through
    if device == "cuda":
        elbits.check_device_errors()  # nothing recorded


@needs_gpu
def test_cuda_bad_values_reported_lazily():
    logits, target, mu, logvar = make((2, 8), 3, "cuda")
    logits[0, 0] = float("nan")
    elbits.elbo_terms(logits, target, mu, logvar)  # no sync, no raise here
    with pytest.raises(ValueError, match="logits contain NaN"):
        elbits.check_device_errors()
    elbits.check_device_errors()  # cleared


@needs_gpu
def test_cuda_compile_fullgraph():
    torch._dynamo.reset()
    logits, target, mu, logvar = make((8, 1, 16, 16), 4, "cuda")
    logits.requires_grad_(True)
    crit = elbits.ELBOLoss()
    eager = crit(logits, target, mu, logvar)
    compiled = torch.compile(lambda *a: crit(*a), fullgraph=True)(logits, target, mu, logvar)
    torch.testing.assert_close(compiled, eager)


def test_colour_likelihood_on_unsupported_device_is_a_clear_error():
    x = torch.zeros(1, 256, 2, 2, device="meta")
    with pytest.raises(
        NotImplementedError, match=r"inputs are on meta, but elbits has kernels for device types cpu"
    ):
        elbits.elbo_terms(
            x,
            torch.zeros(1, 2, 2, dtype=torch.uint8, device="meta"),
            torch.zeros(1, 1, device="meta"),
            torch.zeros(1, 1, device="meta"),
            likelihood="categorical256",
        )


# ------------------------------------------------- colour / 8-bit likelihoods (issue 4)
# The CPU tests' inputs and tolerances (tests/test_colour_likelihoods.py), run on each
# device against the float64 reference on the CPU; plus shapes that span several
# CUDA blocks per sample, so the chunked reductions and the grids are exercised.

# (same inputs as the CPU tests)
from test_colour_likelihoods import (  # noqa: E402
    CB_LOGITS,
    LOW,
    check_compile_matches_eager,
    gaussian_params,
    mixture_params,
)
from test_colour_likelihoods import NAMES as COLOUR_NAMES  # noqa: E402
from test_colour_likelihoods import RTOL as COLOUR_RTOL  # noqa: E402
from test_colour_likelihoods import latents as colour_latents  # noqa: E402
from test_colour_likelihoods import levels as colour_levels  # noqa: E402


def check_colour(device, name, params, target, rtol=None, gtol=2e-4):
    """Values, KL and gradients (per-sample weights) on ``device`` vs the float64 reference on the CPU."""
    mu, logvar = colour_latents(params.shape[0], dtype=params.dtype)
    p = params.detach().to(device).requires_grad_(True)
    terms = elbits.elbo_terms(p, target.to(device), mu.to(device), logvar.to(device), name)
    assert terms.recon.device.type == device and terms.recon.shape == (params.shape[0],)
    want = ref.elbo_terms(params.detach(), target, mu, logvar, name)
    assert terms.dims == want.dims
    rtol = COLOUR_RTOL[params.dtype] if rtol is None else rtol
    recon = terms.recon.detach().cpu().double()
    tol = rtol * want.recon.abs() + 1e-4 * (terms.dims**0.5)
    assert ((recon - want.recon).abs() <= tol).all(), (recon, want.recon)
    torch.testing.assert_close(terms.kl.detach().cpu().double(), want.kl, rtol=1e-5, atol=1e-6)
    w = torch.rand(params.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(3)) + 0.5
    (terms.recon.double() * w.to(device)).sum().backward()
    p64 = params.detach().double().requires_grad_(True)
    (ref.elbo_terms(p64, target, mu, logvar, name).recon * w).sum().backward()
    assert p.grad.dtype == params.dtype and p.grad.device.type == device
    err = (p.grad.cpu().double() - p64.grad).abs()
    scale = p64.grad.abs().max().clamp(min=1.0)
    assert (err <= gtol * scale + 1e-2 * p64.grad.abs()).all(), err.max()
    if device == "cuda":
        elbits.check_device_errors()  # valid inputs: nothing flagged


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, *LOW])
@pytest.mark.parametrize("tdtype", [torch.uint8, torch.int64])
def test_colour_categorical(device, dtype, tdtype):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(3, 256, 3, 5, 4, generator=g) * 4).to(dtype)
    check_colour(device, "categorical256", logits, colour_levels((3, 3, 5, 4), dtype=tdtype))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "shape", [(1, 256, 1), (2, 256, 7), (2, 256, 13, 11), (1, 256, 300), (3, 256, 20, 37)]
)
def test_colour_categorical_shapes_and_saturation(device, shape):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(shape, generator=g) * 30
    logits[:, 7] += 1e4  # one class saturates; the others underflow in the softmax
    check_colour(device, "categorical256", logits, colour_levels((shape[0], *shape[2:])))


@pytest.mark.parametrize("device", DEVICES)
def test_colour_categorical_noncontiguous_and_inplace(device):
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 8, 8, 256, generator=g).permute(0, 3, 1, 2)  # channels-last storage
    check_colour(device, "categorical256", logits, colour_levels((4, 8, 8)))
    x = torch.randn(2, 256, 6, 5, generator=g).to(device)
    target = colour_levels((2, 6, 5)).to(device)
    mu, lv = (t.to(device) for t in colour_latents(2))
    a = x.clone().requires_grad_(True)
    elbits.elbo_terms(a, target, mu, lv, "categorical256").recon.sum().backward()
    h = x.clone().requires_grad_(True)
    out = h * 1.0  # a non-leaf decoder output nobody else saved
    elbits.elbo_terms(out, target, mu, lv, "categorical256_inplace").recon.sum().backward()
    torch.testing.assert_close(h.grad, a.grad)
    torch.testing.assert_close(out.detach(), a.grad)  # the buffer now holds the gradient


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chans,k", [(3, 1), (3, 10), (1, 1), (1, 10)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, *LOW])
def test_colour_mixture(device, chans, k, dtype):
    check_colour(
        device, "logistic_mixture", mixture_params(2, chans, k, dtype=dtype), colour_levels((2, chans, 4, 4))
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chans,k", [(3, 5), (1, 3)])
def test_colour_mixture_several_blocks(device, chans, k):
    # 23 x 23 = 529 pixels: three CUDA blocks per sample, the last one partial.
    p = mixture_params(3, chans, k, side=23, seed=4)
    check_colour(device, "logistic_mixture", p, colour_levels((3, chans, 23, 23), seed=4), gtol=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_colour_mixture_saturated_and_float_targets(device):
    p = mixture_params(2, 3, 3, seed=5)
    _k, logit, means, log_scales, coeffs = ref._mixture_split(p, 3)
    log_scales[0] = -12.0  # below the -7 clamp: zero gradient there
    log_scales[1, 0] = 9.0
    means[1, 1] = 40.0
    coeffs[0, 0] = 30.0
    logit[1] *= 50.0
    target = colour_levels((2, 3, 4, 4))
    check_colour(device, "logistic_mixture", p, target, gtol=1e-3)
    mu, lv = (t.to(device) for t in colour_latents(2))
    a = elbits.elbo_terms(p.to(device), target.to(device), mu, lv, "logistic_mixture").recon
    b = elbits.elbo_terms(
        p.to(device), (target.float() / 127.5 - 1.0).to(device), mu, lv, "logistic_mixture"
    ).recon
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chans", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, *LOW])
def test_colour_gaussian(device, chans, dtype):
    p = gaussian_params(2, chans)
    if dtype == torch.float16:
        p[:, chans:].clamp_(min=-4.0)  # sharper bins have gradients beyond float16's 65504
    check_colour(device, "discretized_gaussian", p.to(dtype), colour_levels((2, chans, 4, 4)))


@pytest.mark.parametrize("device", DEVICES)
def test_colour_gaussian_saturated_and_several_blocks(device):
    p = gaussian_params(2, 3, seed=4)
    p[0, 3:] = -15.0  # sigma ~ 3e-7: bins far from the mean underflow erfc
    p[1, :3] = 30.0
    p[1, 3] = 12.0
    check_colour(device, "discretized_gaussian", p, colour_levels((2, 3, 4, 4)), gtol=1e-3)
    # 3 x 40 x 41 = 4920 subpixels: three CUDA chunks per sample, the last one partial.
    check_colour(
        device,
        "discretized_gaussian",
        gaussian_params(3, 3, side=41, seed=5)[:, :, :40],
        colour_levels((3, 3, 40, 41), seed=5),
        gtol=1e-3,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, *LOW])
def test_colour_continuous_bernoulli(device, dtype):
    g = torch.Generator().manual_seed(0)
    logits = torch.cat([torch.tensor(CB_LOGITS), torch.randn(36, generator=g) * 3]).view(2, 3, 8).to(dtype)
    target = torch.rand(2, 3, 8, generator=g)
    target[0, 0, :2] = torch.tensor([0.0, 1.0])
    check_colour(device, "continuous_bernoulli", logits, target, gtol=5e-5)
    check_colour(device, "continuous_bernoulli", logits, (target * 255).round().to(torch.uint8), gtol=5e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_colour_continuous_bernoulli_several_blocks(device):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 3, 61, 59, generator=g) * 2  # 10797 per sample: three chunks of 4096
    check_colour(device, "continuous_bernoulli", logits, torch.rand(3, 3, 61, 59, generator=g), gtol=1e-4)


def colour_case(name, device, batch=2):
    if name == "categorical256":
        return torch.randn(batch, 256, 9, 31).to(device), colour_levels((batch, 9, 31)).to(device)
    if name == "logistic_mixture":
        return mixture_params(batch, 3, 4, side=17).to(device), colour_levels((batch, 3, 17, 17)).to(device)
    if name == "discretized_gaussian":
        return gaussian_params(batch, 3, side=40).to(device), colour_levels((batch, 3, 40, 40)).to(device)
    return torch.randn(batch, 3, 40, 40).to(device), torch.rand(batch, 3, 40, 40).to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["logistic_mixture", "discretized_gaussian", "continuous_bernoulli"])
def test_colour_batch_mean_gradient_is_prescaled(device, name):
    """A batch-mean loss: the forward stores hint * gradient (hint = 1/B) and backward skips
    every row; half the batch weighted differently exercises the rescale next to the skip."""
    params, target = colour_case(name, "cpu", batch=4)
    mu, lv = colour_latents(4)
    w = torch.tensor([1.0, 3.0, 1.0, 0.5])
    p = params.clone().to(device).requires_grad_(True)
    terms = elbits.elbo_terms(p, target.to(device), mu.to(device), lv.to(device), name)
    (terms.recon.mean() + (terms.recon * (w.to(device) - 1)).sum() / 4).backward()
    p64 = params.double().requires_grad_(True)
    want = ref.elbo_terms(p64, target, mu.double(), lv.double(), name)
    (want.recon * w.double()).sum().div(4).backward()
    torch.testing.assert_close(p.grad.cpu().double(), p64.grad, rtol=1e-4, atol=1e-5)


@needs_gpu
@pytest.mark.parametrize("name", COLOUR_NAMES)
def test_cuda_colour_deterministic_on_current_stream_no_sync(name):
    params, target = colour_case(name, "cuda", batch=16)
    mu, lv = (t.cuda() for t in colour_latents(16))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    results = []
    with torch.cuda.stream(stream):
        torch.cuda.set_sync_debug_mode("error")  # any host sync in forward or backward raises
        try:
            for _ in range(2):
                p = params.clone().requires_grad_(True)
                terms = elbits.elbo_terms(p, target, mu, lv, name)
                terms.recon.sum().backward()
                results.append((terms.recon.detach(), p.grad))
        finally:
            torch.cuda.set_sync_debug_mode(0)
    stream.synchronize()
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])
    # The same numbers as the CPU, up to float32 rounding of the per-element math.
    cpu = elbits.elbo_terms(params.cpu(), target.cpu(), mu.cpu(), lv.cpu(), name).recon
    torch.testing.assert_close(results[0][0].cpu(), cpu, rtol=2e-5, atol=1e-3)
    elbits.check_device_errors()


@needs_gpu
@pytest.mark.parametrize("name", ["categorical256", "logistic_mixture", "discretized_gaussian"])
def test_cuda_colour_level_out_of_range_reported_lazily(name):
    params, target = colour_case(name, "cuda")
    mu, lv = (t.cuda() for t in colour_latents(2))
    bad = target.long()
    bad.view(-1)[5] = 256
    elbits.elbo_terms(params, bad, mu, lv, name)  # no sync, no raise here
    with pytest.raises(ValueError, match="outside 0..255"):
        elbits.check_device_errors()
    elbits.check_device_errors()  # cleared
    bad.view(-1)[5] = -1  # reported even with check_finite=False, as the CPU raises it then too
    elbits.elbo_terms(params, bad, mu, lv, name, check_finite=False)
    with pytest.raises(ValueError, match="outside 0..255"):
        elbits.check_device_errors()
    if name != "categorical256":  # float targets outside [-1, 1]: flagged on the device, no sync
        ft = target.float() / 127.5 - 1.0
        ft.view(-1)[3] = 1.5
        elbits.elbo_terms(params, ft, mu, lv, name)
        with pytest.raises(ValueError, match="outside 0..255"):
            elbits.check_device_errors()


@needs_gpu
@pytest.mark.parametrize("name", COLOUR_NAMES)
def test_cuda_colour_nonfinite_reported_lazily(name):
    params, target = colour_case(name, "cuda")
    mu, lv = (t.cuda() for t in colour_latents(2))
    params[1].view(-1)[3] = float("nan")
    recon = elbits.elbo_terms(params, target, mu, lv, name).recon
    match = "logits contain NaN" if name == "continuous_bernoulli" else "parameters contain NaN"
    with pytest.raises(ValueError, match=match):
        elbits.check_device_errors()
    assert torch.isnan(recon[1]).item() and torch.isfinite(recon[0]).item()
    elbits.elbo_terms(params, target, mu, lv, name, check_finite=False)
    elbits.check_device_errors()  # check_finite=False: NaN passes through unreported


@needs_gpu
def test_cuda_continuous_bernoulli_target_out_of_range_reported_lazily():
    params, target = colour_case("continuous_bernoulli", "cuda")
    mu, lv = (t.cuda() for t in colour_latents(2))
    target[0, 0, 0, 0] = 1.5
    elbits.elbo_terms(params, target, mu, lv, "continuous_bernoulli")
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        elbits.check_device_errors()


@needs_gpu
def test_cuda_colour_large_batch():
    # More samples than a grid's y/z dimension holds (65535): the grids are 1-D.
    n = 70000
    logits = torch.randn(n, 256, 1, device="cuda")
    target = torch.randint(0, 256, (n, 1), device="cuda", dtype=torch.uint8)
    mu, lv = torch.zeros(n, 1, device="cuda"), torch.zeros(n, 1, device="cuda")
    recon = elbits.elbo_terms(logits, target, mu, lv, "categorical256").recon
    want = ref.elbo_terms(logits.cpu(), target.cpu(), mu.cpu(), lv.cpu(), "categorical256").recon
    torch.testing.assert_close(recon.cpu().double(), want, rtol=2e-5, atol=1e-4)


@needs_gpu
@pytest.mark.parametrize("name", COLOUR_NAMES)
def test_cuda_colour_compile_fullgraph(name):
    torch._dynamo.reset()
    params, target = colour_case(name, "cuda")
    check_compile_matches_eager(name, params, target, *(t.cuda() for t in colour_latents(2)))


@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_low_precision_logits_float32_terms(dtype):
    torch.manual_seed(0)
    dec = torch.nn.Linear(4, 64).cuda()
    x = (torch.rand(8, 64, device="cuda") < 0.3).float()
    mu, lv = torch.randn(8, 4, device="cuda"), torch.zeros(8, 4, device="cuda")
    loss32 = elbits.ELBOLoss()(dec(mu), x, mu, lv)
    g32 = torch.autograd.grad(loss32, list(dec.parameters()))
    with torch.autocast("cuda", dtype=dtype):
        logits = dec(mu)
        assert logits.dtype == dtype
        loss16 = elbits.ELBOLoss()(logits, x, mu, lv)
    assert loss16.dtype == torch.float32
    g16 = torch.autograd.grad(loss16, list(dec.parameters()))
    assert loss16.item() == pytest.approx(loss32.item(), rel=1e-2)
    for a, b in zip(g16, g32):
        assert ((a - b).norm() / b.norm()).item() < 0.05  # stated tolerance, as on the CPU
