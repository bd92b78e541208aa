"""Inputs of the 8-bit / colour likelihood tests: latents, target levels, parameter layouts.

Every builder draws on the CPU from a seeded generator, so a test's CPU and CUDA variants see the same
numbers; tests move them to the device themselves.
"""

import torch

import elbits
from elbits import reference as ref

LOW = [torch.float16, torch.bfloat16]
# Relative tolerance on per-sample sums (parameters are rounded to the dtype first,
# so both sides see the same numbers; what remains is float32 arithmetic).
RTOL = {torch.float32: 2e-5, torch.float16: 2e-5, torch.bfloat16: 2e-5, torch.float64: 1e-10}
NAMES = ["categorical256", "logistic_mixture", "discretized_gaussian", "continuous_bernoulli"]
# Continuous Bernoulli logits on both sides of the kernel's series / log-form switch (|eta| < 2 in
# float, < 0.1 in float64) and far into both tails.
CB_LOGITS = [0.0, 1e-6, -1e-4, 0.01, -0.3, 0.49, 0.51, -0.7, 2.0, -15.0, 40.0, -100.0]


def latents(batch, z=4, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, z, generator=g).to(dtype), torch.randn(batch, z, generator=g).to(dtype)


def levels(shape, seed=0, dtype=torch.uint8):
    """Random 8-bit levels with the first four at 0, 255, 1, 254 (every edge bin)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 256, shape, generator=g)
    flat = t.view(-1)
    flat[: min(4, flat.numel())] = torch.tensor([0, 255, 1, 254])[: min(4, flat.numel())]
    return t.to(dtype)


def mixture_params(batch, chans, k, side=4, seed=0, dtype=torch.float32, scale=1.0):
    """Logistic-mixture parameters (PixelCNN++ layout) with scales from e^-7 (clamped) to ~e^2."""
    g = torch.Generator().manual_seed(seed)
    per = 10 if chans == 3 else 3
    p = torch.randn(batch, per * k, side, side, generator=g) * scale
    _k, _l, means, log_scales, coeffs = ref._mixture_split(p, chans)
    means.mul_(0.5)
    log_scales.mul_(1.5).sub_(2.5)  # sharp and flat bins
    return p.to(dtype)


def gaussian_params(batch, chans, side=4, seed=0, dtype=torch.float32):
    """Discretized-Gaussian parameters: C means then C log-scales."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(batch, chans, side, side, generator=g) * 0.6
    log_scales = torch.randn(batch, chans, side, side, generator=g) * 2.0 - 3.0
    return torch.cat([means, log_scales], 1).to(dtype)


def small_case(name, dtype=torch.float64):
    """(params, target) of ``name`` with a few subpixels per sample, batch 2."""
    if name == "categorical256":
        return torch.randn(2, 256, 2, 3, dtype=dtype), levels((2, 2, 3))
    if name == "logistic_mixture":
        return mixture_params(2, 3, 2, side=2).to(dtype), levels((2, 3, 2, 2))
    if name == "discretized_gaussian":
        return gaussian_params(2, 3, side=2).to(dtype), levels((2, 3, 2, 2))
    return torch.randn(2, 3, 2, 2, dtype=dtype), torch.rand(2, 3, 2, 2)


def colour_case(name, device, batch=2):
    """(params, target) of ``name`` large enough for several CUDA blocks per sample."""
    if name == "categorical256":
        return torch.randn(batch, 256, 9, 31).to(device), levels((batch, 9, 31)).to(device)
    if name == "logistic_mixture":
        return mixture_params(batch, 3, 4, side=17).to(device), levels((batch, 3, 17, 17)).to(device)
    if name == "discretized_gaussian":
        return gaussian_params(batch, 3, side=40).to(device), levels((batch, 3, 40, 40)).to(device)
    return torch.randn(batch, 3, 40, 40).to(device), torch.rand(batch, 3, 40, 40).to(device)


def check_compile_matches_eager(name, params, target, mu, lv):
    """Gradients of the batch-mean loss under torch.compile(fullgraph=True) equal eager ones."""

    def f(p, t, m, v):
        terms = elbits.elbo_terms(p, t, m, v, name)
        # kl.sum(1): Dynamo before torch 2.13 cannot read the kl_total property (test_hostile_autograd.py)
        return (terms.recon + terms.kl.sum(1)).mean()

    p1 = params.clone().requires_grad_(True)
    p2 = params.clone().requires_grad_(True)
    f(p1, target, mu, lv).backward()
    torch.compile(f, fullgraph=True)(p2, target, mu, lv).backward()
    torch.testing.assert_close(p1.grad, p2.grad)
