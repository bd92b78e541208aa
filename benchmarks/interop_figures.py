"""The figures of docs/interop.md: each client's own loss beside elbits' on one batch, a saturated pythae
decoder,
and the cost of finding the logits behind a decoder's sigmoid.

    PYTHONPATH=python .venv/bin/python benchmarks/interop_figures.py

Needs pythae (`pip install pythae`) and ../shared/reference (the real dSprites samples, disentangling-vae's
VAE_dsprites checkpoint); disentangling-vae's model and BetaH loss are tests/disvae_reference.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import disvae_reference as dv  # noqa: E402
from reference_files import REAL_PNG, VAE_MODEL  # noqa: E402

import elbits  # noqa: E402
from elbits.data.fidelity import load_reference_grid  # noqa: E402
from elbits.models import adapt  # noqa: E402


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def side_by_side(x: torch.Tensor) -> None:
    m = dv.VAE()
    m.load_state_dict(torch.load(VAE_MODEL, map_location="cpu", weights_only=True))
    m.eval()  # z = mu
    a = adapt(m)
    with torch.no_grad():
        recon, dist, _ = m(x)
        t = a.terms(x)
    print(
        f"disentangling-vae VAE_dsprites, {len(x)} real dSprites, eval mode, "
        f"decoder_output={a.decoder_output!r}"
    )
    for beta in (1.0, 4.0):
        own = float(dv.beta_h_loss(x, recon, dist, beta))
        el = float((t.recon + beta * t.kl_total).mean())
        print(f"  BetaH beta={beta:g}: own {own:.6f}  elbits {el:.6f} nats/image  rel {rel(el, own):.1e}")

    from pythae.models import BetaVAE, BetaVAEConfig

    torch.manual_seed(0)
    p = BetaVAE(
        BetaVAEConfig(input_dim=(1, 64, 64), latent_dim=8, reconstruction_loss="bce", beta=4.0)
    ).train()
    with torch.no_grad():  # as tests/test_adapters.py: q(z|x) moved off the prior
        p.encoder.embedding.bias.fill_(0.5)
        p.encoder.log_var.bias.fill_(-1.0)
    pa = adapt(p)
    xb = x[:16]
    torch.manual_seed(1)
    out = p({"data": xb})
    torch.manual_seed(1)
    t = pa.terms(xb)
    print(
        f"pythae BetaVAE(beta=4), default MLP nets, seeded init, train mode, 16 images, "
        f"decoder_output={pa.decoder_output!r}"
    )
    for name, own_t, el_t in (
        ("loss", out.loss, (t.recon + 4 * t.kl_total).mean()),
        ("recon_loss", out.recon_loss, t.recon.mean()),
        ("reg_loss", out.reg_loss, t.kl_total.mean()),
    ):
        own, el = float(own_t.detach()), float(el_t.detach())
        print(f"  {name}: own {own:.6f}  elbits {el:.6f} nats/image  rel {rel(el, own):.1e}")


def saturated() -> None:
    from pythae.models import VAE, VAEConfig
    from pythae.models.nn.benchmarks.mnist import Decoder_Conv_AE_MNIST, Encoder_Conv_VAE_MNIST

    cfg = VAEConfig(input_dim=(1, 28, 28), latent_dim=8, reconstruction_loss="bce")
    torch.manual_seed(0)
    m = VAE(cfg, Encoder_Conv_VAE_MNIST(cfg), Decoder_Conv_AE_MNIST(cfg)).train()
    a = adapt(m)
    x = (torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    torch.manual_seed(3)
    out = m({"data": x})
    torch.manual_seed(3)
    logits, mu, logvar = a(x)
    el = elbits.elbo_terms(logits, x, mu, logvar).recon.detach()
    own = F.binary_cross_entropy(out.recon_x.detach(), x, reduction="none").sum((1, 2, 3))
    truth = F.binary_cross_entropy_with_logits(logits.detach().double(), x.double(), reduction="none").sum(
        (1, 2, 3)
    )
    print(
        "pythae VAE, MNIST conv nets, seeded init: per-image recon, nats (own clamped BCE / elbits / float64)"
    )
    for i in range(len(x)):
        print(
            f"  image {i}: {float(own[i]):10.4f} {float(el[i]):10.4f} {float(truth[i]):10.4f}"
            f"   max |logit| {float(logits[i].detach().abs().max()):.1f}"
        )


def tap_cost() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = dv.VAE().eval()
    a = adapt(m)

    def best(f, n: int) -> float:
        f()
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            times.append((time.perf_counter() - t0) / n)
        return min(times)

    print("finding the logits (the sigmoid tap), Burgess decoder, CPU, 1 thread, no_grad, best of 7:")
    with torch.no_grad():
        for b, n in ((1, 300), (64, 20)):
            z = torch.randn(b, 10)
            raw, ad = best(lambda z=z: m.decoder(z), n), best(lambda z=z: a.decode(z), n)
            print(
                f"  batch {b}: client decoder {raw * 1e3:.3f} ms, adapter decode {ad * 1e3:.3f} ms "
                f"(+{(ad - raw) * 1e6:.0f} us)"
            )


if __name__ == "__main__":
    side_by_side(torch.from_numpy(load_reference_grid(REAL_PNG)).float()[:, None])
    saturated()
    tap_cost()
