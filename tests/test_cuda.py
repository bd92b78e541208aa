"""What only CUDA has: streams, asynchronous error reports, grids, autocast; skipped without a GPU.

The per-element math is shared with the CPU (csrc/include/elbits). Each likelihood's values and
gradients on CUDA are its own test file's tests, parametrised over device (tests/helpers/devices.py);
this file holds the CUDA-only behaviour.
"""

import math

import pytest
import torch
from helpers.colour_inputs import NAMES as COLOUR_NAMES
from helpers.colour_inputs import colour_case
from helpers.colour_inputs import latents as colour_latents
from helpers.devices import DEVICES, needs_gpu

import elbits
from elbits import reference as ref


def make(shape, z, device, ldtype=torch.float32, tdtype=torch.uint8, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(ldtype)
    target = (torch.rand(shape, generator=g) < 0.3).to(tdtype)
    mu = torch.randn(shape[0], z, generator=g, dtype=torch.float64).to(ldtype)
    logvar = torch.randn(shape[0], z, generator=g, dtype=torch.float64).to(ldtype)
    return [t.to(device) for t in (logits, target, mu, logvar)]


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


# ------------------------------------------------- colour / 8-bit likelihoods


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
