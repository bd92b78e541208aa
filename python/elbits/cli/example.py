"""``elbits example``: recon and KL of a generated batch, in nats and bits per sample."""

from __future__ import annotations

import argparse

import torch

import elbits

from ._args import positive_int, seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("example", help="print recon and KL of a generated binary batch in nats and bits")
    p.add_argument("--batch", type=positive_int, default=64, help="samples in the batch (default 64)")
    p.add_argument("--seed", type=seed, default=0, help="the generated batch (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    g = torch.Generator().manual_seed(args.seed)
    # A binary 64x64 batch (dSprites-shaped) and an untrained decoder's logits.
    target = (torch.rand(args.batch, 1, 64, 64, generator=g) < 0.1).to(torch.uint8)
    logits = torch.randn(args.batch, 1, 64, 64, generator=g) - 2.0
    mu = torch.randn(args.batch, 10, generator=g)
    logvar = torch.randn(args.batch, 10, generator=g) * 0.5
    terms = elbits.elbo_terms(logits, target, mu, logvar)
    recon = terms.recon.mean().item()
    kl = terms.kl_total.mean().item()
    print(f"batch of {args.batch} binary 64x64 images, {terms.dims} pixels each, Z = {mu.shape[1]}")
    print(f"{'term':<16}{'nats/sample':>14}{'bits/sample':>14}{'bits/dim':>12}")
    for name, nats in (("reconstruction", recon), ("KL", kl), ("negative ELBO", recon + kl)):
        bits = elbits.units.nats_to_bits(nats)
        print(f"{name:<16}{nats:>14.2f}{bits:>14.2f}{bits / terms.dims:>12.4f}")
    mean_pixel = recon / terms.dims
    print(f"\nThe sum-vs-mean trap: a per-pixel *mean* reconstruction would read {mean_pixel:.4f} nats,")
    print(f"{terms.dims}x smaller than the per-sample sum, while the KL is a per-sample sum ({kl:.2f} nats).")
    return 0
