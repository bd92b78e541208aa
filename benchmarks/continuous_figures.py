"""The figures of docs/likelihoods-continuous.md: saturated probabilities, density vs code length in
three data units, and CPU timings. Run from the repository root:

    PYTHONPATH=python .venv/bin/python benchmarks/continuous_figures.py [--no-timing]

Reads the real dSprites samples and the disentangling-vae checkpoint from ../shared/reference.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

import elbits
from elbits.evaluate import load_images
from elbits.models import load_disentangling_vae

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference"


def saturated() -> None:
    # +-40 logits on a 64x64 image with 2048 pixels on; 128 wrongly off, 128 wrongly on
    t = torch.zeros(1, 1, 64, 64)
    t.view(-1)[:2048] = 1
    logits = torch.where(t > 0, 40.0, -40.0)
    logits.view(-1)[:128] = -40.0
    logits.view(-1)[2048:2176] = 40.0
    z = torch.zeros(1, 1)
    exact = elbits.elbo_terms(logits, t, z, z).recon.item()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", elbits.likelihoods.SaturationWarning)
        clamped = elbits.elbo_terms(torch.sigmoid(logits), t, z, z, input="probs").recon.item()
    print(f"saturated +-40: logits {exact:,.1f} nats/image; input='probs' {clamped:,.1f} nats/image")


def real_model() -> None:
    x = load_images(SHARED / "dsprites" / "real_samples_10x10.png")
    model = load_disentangling_vae(SHARED / "disentangling-vae" / "VAE_dsprites" / "model.pt").eval()
    with torch.no_grad():
        mu, lv = model.encode(x.float())
        lg = model.decode(mu)
        p = torch.sigmoid(lg)
        a = elbits.elbo_terms(lg, x, mu, lv).recon
        b = elbits.elbo_terms(p, x, mu, lv, input="probs").recon
        clamped = int((((p == 1) & (x == 0)) | ((p == 0) & (x == 1))).sum())
        print(
            f"VAE_dsprites, 100 real samples: logits {a.mean():.2f}, probs {b.mean():.2f} nats/image; "
            "largest "
            f"per-image gap {(b - a).abs().max():.2f}; clamped pixels {clamped}; max |logit| "
            f"{lg.abs().max():.1f}"
        )
        levels = x * 255
        for lik in ("gaussian", "laplace"):
            for lo, hi in ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)):
                k = hi - lo
                mean, data = p * k + lo, x.float() * k + lo
                d = elbits.elbo_terms(mean, data, mu, lv, lik, scale=0.1 * k)
                q = elbits.elbo_terms(mean, levels, mu, lv, lik, scale=0.1 * k, discretize=(lo, hi))
                print(
                    f"  {lik} on [{lo:g}, {hi:g}], scale {0.1 * k:g}: density {d.recon.mean():9.1f} "
                    "nats/image "
                    f"({d.recon_bits_per_dim.mean():+.3f} bits/dim); code length "
                    f"{q.recon_bits_per_dim.mean():.4f} bits/dim"
                )


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mean = 0.2 + 0.6 * torch.rand(64, 3, 64, 64, generator=g)
    levels = (
        (255 * (mean + 0.05 * torch.randn(mean.shape, generator=g))).round().clamp(0, 255).to(torch.uint8)
    )
    return mean, levels


def wide_scales() -> None:
    mean, levels = batch()
    dims = mean[0].numel()
    z = torch.zeros(64, 8)
    for lik, s in (("gaussian", 0.05), ("laplace", 0.05 / math.sqrt(2))):
        d = elbits.elbo_terms(mean, levels.float() / 255, z, z, lik, scale=s).recon.mean().item() / dims
        q = elbits.elbo_terms(mean, levels, z, z, lik, scale=s, discretize=(0, 1)).recon.mean().item() / dims
        print(
            f"{lik} scale {s:.4f}: density {d:+.4f} nats/dim (+ log 255 = {d + math.log(255):.4f}); "
            f"code length {q:.4f} nats/dim = {q / math.log(2):.4f} bits/dim"
        )


def timing() -> None:
    torch.set_num_threads(2)
    mean0, levels = batch()
    x = levels.float() / 255
    mean = mean0.clone().requires_grad_(True)
    mu, lv = torch.zeros(64, 32, requires_grad=True), torch.zeros(64, 32, requires_grad=True)
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(256, 1, 64, 64, generator=g).requires_grad_(True)
    bt = (torch.rand(256, 1, 64, 64, generator=g) < 0.5).float()
    mu2, lv2 = torch.zeros(256, 32, requires_grad=True), torch.zeros(256, 32, requires_grad=True)

    def kl(m, v):
        return (0.5 * (m * m + torch.expm1(v) - v)).sum(1)

    def nelbo(*args, **kw):
        return elbits.elbo_terms(*args, **kw).nelbo.mean()

    cases = {
        "64x3x64x64: F.mse_loss + KL, plain torch": lambda: (
            F.mse_loss(mean, x, reduction="none").flatten(1).sum(1) / (2 * 0.05**2) + kl(mu, lv)
        ).mean(),
        "64x3x64x64: gaussian density": lambda: nelbo(mean, x, mu, lv, "gaussian", scale=0.05),
        "64x3x64x64: laplace density": lambda: nelbo(mean, x, mu, lv, "laplace", scale=0.05),
        "64x3x64x64: gaussian discretize=(0, 1)": lambda: nelbo(
            mean, levels, mu, lv, "gaussian", scale=0.05, discretize=(0, 1)
        ),
        "64x3x64x64: laplace discretize=(0, 1)": lambda: nelbo(
            mean, levels, mu, lv, "laplace", scale=0.05, discretize=(0, 1)
        ),
        "256x1x64x64: bernoulli logits (fused)": lambda: nelbo(logits, bt, mu2, lv2),
        "256x1x64x64: bernoulli input='probs'": lambda: nelbo(
            torch.sigmoid(logits), bt, mu2, lv2, input="probs"
        ),
        "256x1x64x64: F.binary_cross_entropy + KL, plain torch": lambda: (
            F.binary_cross_entropy(torch.sigmoid(logits), bt, reduction="none").flatten(1).sum(1)
            + kl(mu2, lv2)
        ).mean(),
    }
    print("| case | fwd+bwd median, ms |\n|---|---|")
    for name, loss in cases.items():

        def run(loss=loss):
            loss().backward()
            for t in (mean, mu, lv, logits, mu2, lv2):
                t.grad = None

        r = Timer("run()", globals={"run": run}).blocked_autorange(min_run_time=2.0)
        print(f"| {name} | {r.median * 1e3:.2f} |")


if __name__ == "__main__":
    saturated()
    real_model()
    wide_scales()
    if "--no-timing" not in sys.argv:
        timing()
