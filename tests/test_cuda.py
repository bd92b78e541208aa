"""CUDA kernels against the float64 reference: skipped without a GPU, unchanged with one.

The per-element math is shared with the CPU (csrc/include/elbits), so the CPU tests
cover it everywhere; these check the CUDA loops, reductions, dispatch and streams.
"""

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


@needs_gpu
def test_cuda_deterministic_and_on_current_stream():
    logits, target, mu, logvar = make((64, 1, 64, 64), 10, "cuda")
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        a = elbits.elbo_terms(logits, target, mu, logvar).recon
        b = elbits.elbo_terms(logits, target, mu, logvar).recon
    stream.synchronize()
    assert torch.equal(a, b)


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
    with pytest.raises((NotImplementedError, ValueError)):
        elbits.elbo_terms(x, torch.zeros(1, 2, 2, dtype=torch.uint8, device="meta"), torch.zeros(1, 1, device="meta"),
                          torch.zeros(1, 1, device="meta"), likelihood="categorical256")
