"""fwd+bwd of the colour likelihoods + KL: elbits vs eager PyTorch vs torch.compile, same inputs, same run.

Run: cd benchmarks && ../.venv/bin/python -m pytest -q -p no:cacheprovider test_bench_colour.py
(PYTHONPATH=../python for the in-place build). Figures: README.md "Likelihoods".
"""

import pytest
import torch
import torch.nn.functional as F

import elbits
from elbits import reference
from elbits.benchmarking import allocated_bytes

IMPLS = ["fused", "eager", "compile"]


def _kl(mu, lv):
    return reference.gaussian_kl(mu, lv, mu.dtype).sum(1)


def _cat_ref(x, t, mu, lv):
    recon = F.cross_entropy(x, t.long(), reduction="none").flatten(1).sum(1)
    return (recon + _kl(mu, lv)).mean()


def _mix_ref(p, t, mu, lv):
    return (reference.pixelcnn_pp_nll(p, t) + _kl(mu, lv)).mean()


def _fused(name):
    def loss(x, t, mu, lv):
        terms = elbits.elbo_terms(x, t, mu, lv, name)
        return (terms.recon + terms.kl_total).mean()

    return loss


def _loss_fn(impl, name, ref):
    if impl == "fused":
        return _fused(name)
    if impl == "fused_inplace":
        return _fused(name + "_inplace")
    if impl == "eager":
        return ref
    return torch.compile(ref, fullgraph=True)


def _inputs(shape, target, z=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    mu = torch.randn(shape[0], z, generator=g).requires_grad_(True)
    lv = torch.randn(shape[0], z, generator=g).requires_grad_(True)
    return x, target(g), mu, lv


def _bench(benchmark, impl, group, loss_fn, x, t, mu, lv, rounds, fresh_copy=False):
    """fwd+bwd with gradients for the image parameters and the latents. With ``fresh_copy``
    (the in-place variant consumes its logits) each round gets a new copy, made outside the timing."""
    leaf = x.clone().requires_grad_(True)

    def setup():
        if fresh_copy:
            leaf.data.copy_(x)  # restore the buffer the previous backward overwrote
        for p in (leaf, mu, lv):
            p.grad = None
        return (), {}

    def run():
        loss_fn(leaf, t, mu, lv).backward()

    for _ in range(2):  # compile, warm the allocator
        setup()
        run()
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    setup()
    benchmark.extra_info["allocated_mb"] = allocated_bytes(run) / 2**20
    benchmark.pedantic(run, setup=setup, rounds=rounds, warmup_rounds=1)


@pytest.mark.parametrize("impl", IMPLS + ["fused_inplace"])
def test_categorical256_fwd_bwd(benchmark, impl):
    x, t, mu, lv = _inputs((32, 256, 3, 32, 32), lambda g: torch.randint(0, 256, (32, 3, 32, 32), generator=g).to(torch.uint8))
    _bench(benchmark, impl, "categorical256+kl fwd+bwd 32x3x32x32", _loss_fn(impl, "categorical256", _cat_ref),
           x, t, mu, lv, rounds=8, fresh_copy=impl == "fused_inplace")


@pytest.mark.parametrize("impl", IMPLS)
def test_logistic_mixture_fwd_bwd(benchmark, impl):
    def params(g):
        return torch.randint(0, 256, (16, 3, 32, 32), generator=g).to(torch.uint8)

    x, t, mu, lv = _inputs((16, 100, 32, 32), params)
    _bench(benchmark, impl, "logistic_mixture K=10 +kl fwd+bwd 16x3x32x32",
           _loss_fn(impl, "logistic_mixture", _mix_ref), x, t, mu, lv, rounds=10)
