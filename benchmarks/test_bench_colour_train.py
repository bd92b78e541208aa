"""One colour training step of ColourVAE: elbits.ELBOLoss vs eager PyTorch vs torch.compile, same run.

A step is forward, loss, backward and AdamW step of the 32 px colour VAE (Z = 10) on one batch of 64
32x32 RGB scikit-image photo patches (uint8 levels), the loss being, per impl:

- fused: :class:`elbits.ELBOLoss` (what ``elbits train`` uses);
- eager: the float32 PyTorch reference of :mod:`elbits.benchmarking` (PyTorch's PixelCNN++ mixture loss /
  ``cross_entropy``, plus the Gaussian KL), the same loss as ``elbits bench`` compares against;
- compile: ``torch.compile(fullgraph=True)`` of that reference loss (the model stays eager).

Likelihoods: the logistic mixture with K = 5 (the colour default, decoder [64, 50, 32, 32]) and
categorical-256 (decoder [64, 768, 32, 32]). Every impl starts from the same weights; the model costs the
same in each, so the ratios are smaller than those of the loss alone (test_bench_colour.py). Run:
cd benchmarks && PYTHONPATH=../python ../.venv/bin/python -m pytest -q -p no:cacheprovider
test_bench_colour_train.py
"""

import pytest
import torch

import elbits
from elbits.benchmarking import IMPLS, colour_case
from elbits.models.colour import ColourVAE

pytest.importorskip("skimage", reason="the photo patches need scikit-image (elbits[colour])")

BATCH = 64


@pytest.fixture(scope="module")
def patches():
    from elbits.data.photos import photo_patches

    return photo_patches(32, limit=BATCH)  # uint8 [64, 3, 32, 32], spread over every photograph


def _loss(likelihood, impl):
    """loss(decoder output, uint8 levels, mu, logvar) -> nats per image, batch mean, beta = 1."""
    if impl == "fused":
        crit = elbits.ELBOLoss(likelihood)
        if likelihood == "categorical256":
            return lambda out, x, mu, logvar: crit(out.unflatten(1, (256, 3)), x, mu, logvar)
        return crit
    ref = colour_case(likelihood, BATCH).loss_fn(impl)  # the case's inputs are not used
    if likelihood == "categorical256":
        return lambda out, x, mu, logvar: ref(out.unflatten(1, (256, 3)), x, mu, logvar)
    return ref


def _bench(benchmark, patches, likelihood, impl, rounds):
    torch.manual_seed(0)  # the same initial weights and z noise for every impl
    model = ColourVAE(z_dim=10, size=32, likelihood=likelihood, mixtures=5)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = _loss(likelihood, impl)
    x = patches

    def step():
        out, mu, logvar = model(x)
        loss = loss_fn(out, x, mu, logvar)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    with torch.no_grad():  # the impls compute the same loss: a timing of the wrong loss is no timing
        out, mu, logvar = model(x)
        fused = _loss(likelihood, "fused")(out, x, mu, logvar)
        torch.testing.assert_close(loss_fn(out, x, mu, logvar), fused, rtol=1e-4, atol=0.0)
    for _ in range(2):  # compile, warm the allocator
        step()
    benchmark.group = f"ColourVAE train step, {likelihood}, {BATCH}x3x32x32"
    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(step, rounds=rounds, warmup_rounds=1)
    benchmark.extra_info["images_per_s"] = BATCH / benchmark.stats.stats.median


@pytest.mark.parametrize("impl", IMPLS)
def test_logistic_mixture_train_step(benchmark, patches, impl):
    _bench(benchmark, patches, "logistic_mixture", impl, rounds=5)


@pytest.mark.parametrize("impl", IMPLS)
def test_categorical256_train_step(benchmark, patches, impl):
    _bench(benchmark, patches, "categorical256", impl, rounds=3)
