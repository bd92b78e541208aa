"""Side-by-side cases for benchmarks: the fused op, eager PyTorch, torch.compile.

Shared by benchmarks/ (pytest-benchmark) so that every implementation runs on
the same inputs in the same process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import reference
from .api import elbo_terms


@dataclass
class Inputs:
    logits: torch.Tensor
    target: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


def bernoulli_inputs(batch: int, z: int = 10, side: int = 64, seed: int = 0) -> Inputs:
    """A dSprites-shaped batch: [B, 1, side, side] logits, uint8 {0,1} target, [B, z] latents."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, 1, side, side, generator=g).requires_grad_(True)
    target = (torch.rand(batch, 1, side, side, generator=g) < 0.1).to(torch.uint8)
    mu = torch.randn(batch, z, generator=g).requires_grad_(True)
    logvar = torch.randn(batch, z, generator=g).requires_grad_(True)
    return Inputs(logits, target, mu, logvar)


def _loss_fused(x, t, mu, lv):
    terms = elbo_terms(x, t, mu, lv)
    return (terms.recon + terms.kl_total).mean()


def _loss_reference(x, t, mu, lv):
    terms = reference.elbo_terms(x, t, mu, lv, dtype=x.dtype)
    return (terms.recon + terms.kl_total).mean()


def fwd_bwd(impl: str) -> Callable[[Inputs], None]:
    """A callable running forward + backward of the mean negative ELBO with ``impl``:
    ``"fused"`` (elbits), ``"eager"`` (elbits.reference in the input dtype) or
    ``"compile"`` (torch.compile of the same reference)."""
    if impl == "fused":
        loss_fn = _loss_fused
    elif impl == "eager":
        loss_fn = _loss_reference
    elif impl == "compile":
        loss_fn = torch.compile(_loss_reference, fullgraph=True)
    else:
        raise ValueError(f"impl must be 'fused', 'eager' or 'compile', got {impl!r}")

    def run(inp: Inputs) -> None:
        for t in (inp.logits, inp.mu, inp.logvar):
            t.grad = None
        loss_fn(inp.logits, inp.target, inp.mu, inp.logvar).backward()

    return run


def allocated_bytes(fn: Callable[[], None]) -> int:
    """Tensor bytes allocated (not freed-and-reused: the sum of allocations) during one call, via the
    torch profiler's memory events. Counts what the computation allocates beyond its inputs, gradients included."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    total = 0
    for evt in prof.events():
        nbytes = getattr(evt, "cpu_memory_usage", 0)
        if nbytes > 0 and not evt.cpu_children:
            total += nbytes
    return total
