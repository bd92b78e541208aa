"""Side-by-side cases for benchmarks: the fused op, eager PyTorch, torch.compile.

Shared by benchmarks/ (pytest-benchmark) and ``elbits bench`` so that every
implementation runs on the same inputs in the same process, and timings are
reported as ratios.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.profiler import ProfilerActivity, profile

from . import reference
from .api import elbo_terms
from .ops.buffers import release_buffers

Loss = Callable[..., torch.Tensor]
IMPLS = ("fused", "eager", "compile")


@dataclass
class Case:
    """One benchmark: inputs, the fused and reference losses, and the bytes a one-pass kernel must move."""

    name: str
    make_inputs: Callable[[], dict[str, torch.Tensor]]
    fused: Loss
    reference: Loss
    min_bytes: int
    # the fused loss with the gradient written into the parameters (inplace_grad), where there is one;
    # it consumes the parameters: restore them before each call
    fused_inplace: Loss | None = None
    _compiled: Loss | None = field(default=None, repr=False)

    def loss_fn(self, impl: str) -> Loss:
        if impl == "fused":
            return self.fused
        if impl == "fused_inplace" and self.fused_inplace is not None:
            return self.fused_inplace
        if impl == "eager":
            return self.reference
        if impl == "compile":
            if self._compiled is None:
                self._compiled = torch.compile(self.reference, fullgraph=True)
            return self._compiled
        impls = IMPLS if self.fused_inplace is None else (*IMPLS, "fused_inplace")
        raise ValueError(f"impl must be one of {impls} for {self.name}, got {impl!r}")


def _kl_total(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return reference.gaussian_kl(mu, logvar, mu.dtype).sum(1)


def _fused_loss(likelihood: str) -> Loss:
    def loss(params, target, mu, logvar):
        terms = elbo_terms(params, target, mu, logvar, likelihood)
        return (terms.recon + terms.kl_total).mean()

    return loss


def _bernoulli_reference(logits, target, mu, logvar):
    terms = reference.elbo_terms(logits, target, mu, logvar, dtype=logits.dtype)
    # kl.sum(1): compiled with fullgraph, and Dynamo before torch 2.13 cannot read the kl_total property
    return (terms.recon + terms.kl.sum(1)).mean()


def bernoulli_case(batch: int, z: int = 10, side: int = 64, seed: int = 0) -> Case:
    """dSprites-shaped: [B, 1, side, side] float32 logits, uint8 {0,1} target, [B, z] latents."""

    def make() -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return {
            "logits": torch.randn(batch, 1, side, side, generator=g).requires_grad_(True),
            "target": (torch.rand(batch, 1, side, side, generator=g) < 0.1).to(torch.uint8),
            "mu": torch.randn(batch, z, generator=g).requires_grad_(True),
            "logvar": torch.randn(batch, z, generator=g).requires_grad_(True),
        }

    n = batch * side * side
    # one pass: read logits (4 B) and target (1 B), write the logits' gradient (4 B)
    return Case(
        f"bernoulli+kl {batch}x1x{side}x{side}", make, _fused_loss("bernoulli"), _bernoulli_reference, 9 * n
    )


def _categorical_reference(params, target, mu, logvar):
    recon = torch.nn.functional.cross_entropy(params, target.long(), reduction="none").flatten(1).sum(1)
    return (recon + _kl_total(mu, logvar)).mean()


def _mixture_reference(params, target, mu, logvar):
    return (reference.pixelcnn_pp_nll(params, target) + _kl_total(mu, logvar)).mean()


def colour_case(likelihood: str, batch: int, side: int = 32, k: int = 10, z: int = 32, seed: int = 0) -> Case:
    """3-channel ``side``x``side`` images: ``"categorical256"`` logits [B, 256, 3, side, side] or
    ``"logistic_mixture"`` params [B, 10k, side, side]; uint8 levels as targets."""
    channels = 256 if likelihood == "categorical256" else 10 * k
    shape = (batch, 256, 3, side, side) if likelihood == "categorical256" else (batch, channels, side, side)

    def make() -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return {
            "params": torch.randn(shape, generator=g).requires_grad_(True),
            "target": torch.randint(0, 256, (batch, 3, side, side), generator=g, dtype=torch.uint8),
            "mu": torch.randn(batch, z, generator=g).requires_grad_(True),
            "logvar": torch.randn(batch, z, generator=g).requires_grad_(True),
        }

    n_params = 1
    for d in shape:
        n_params *= d
    if likelihood == "categorical256":
        # forward reads the logits, backward reads them again and writes the gradient
        return Case(
            f"categorical256 {batch}x3x{side}x{side}",
            make,
            _fused_loss(likelihood),
            _categorical_reference,
            3 * 4 * n_params,
            fused_inplace=_fused_loss("categorical256_inplace"),
        )
    # read the parameters, write their gradient
    return Case(
        f"logistic mixture K={k} {batch}x3x{side}x{side}",
        make,
        _fused_loss(likelihood),
        _mixture_reference,
        2 * 4 * n_params,
    )


CASES: dict[str, Callable[[], Case]] = {
    "bernoulli-256": lambda: bernoulli_case(256),
    "bernoulli-1024": lambda: bernoulli_case(1024),
    "categorical256-32": lambda: colour_case("categorical256", 32),
    "mixture-16": lambda: colour_case("logistic_mixture", 16),
    # GPU-sized: on a GPU the cases above are a few microseconds of kernel under the launch overhead
    "bernoulli-8192": lambda: bernoulli_case(8192),
    "categorical256-256": lambda: colour_case("categorical256", 256),
    "mixture-256": lambda: colour_case("logistic_mixture", 256),
}
DEFAULT_CASES = ("bernoulli-256", "bernoulli-1024", "categorical256-32", "mixture-16")


def to_device(inputs: dict[str, torch.Tensor], device: str | torch.device) -> dict[str, torch.Tensor]:
    """The same inputs on ``device``, leaves that required grad still requiring it."""
    return {k: v.detach().to(device).requires_grad_(v.requires_grad) for k, v in inputs.items()}


def synchronizer(device: str | torch.device) -> Callable[[], None]:
    """Waits for queued GPU work, so that a wall-clock time covers the kernels; a no-op on the CPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return functools.partial(torch.cuda.synchronize, dev)
    return lambda: None


def fwd_bwd(case: Case, impl: str) -> Callable[[dict[str, torch.Tensor]], None]:
    """forward + backward of ``case``'s loss with ``impl``; gradients reset each call."""
    loss_fn = case.loss_fn(impl)

    def run(inputs: dict[str, torch.Tensor]) -> None:
        clear_grads(inputs)
        loss_fn(*inputs.values()).backward()  # (params, target, mu, logvar), in that order

    return run


def allocated_bytes(fn: Callable[[], None], device: str | torch.device = "cpu") -> int:
    """Tensor bytes allocated during one call (the sum of allocations, gradients included),
    from the torch profiler's memory events; not process RSS. On a CUDA device: the peak of
    the caching allocator's allocated bytes during the call, above what was allocated before.

    elbits keeps its last gradient buffer for reuse (:func:`elbits.release_buffers`);
    it is dropped first, so that buffer is counted as allocated by the call it serves."""
    release_buffers()
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        fn()
        torch.cuda.synchronize(dev)
        return torch.cuda.max_memory_allocated(dev) - base
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    total = 0
    for evt in prof.events():
        nbytes = getattr(evt, "cpu_memory_usage", 0)
        if nbytes > 0 and not evt.cpu_children:
            total += nbytes
    return total


def kernel_ms(fn: Callable[[], None], device: str | torch.device, reps: int = 10) -> float:
    """Mean GPU time of the kernels (and device copies/memsets) one call of ``fn`` launches, in ms,
    from the torch profiler: the device's share of a call, without the host's launch overhead."""
    sync = synchronizer(device)
    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        sync()
    total_us = 0.0
    for evt in prof.events():
        if evt.device_type == torch.autograd.DeviceType.CUDA:
            # device_time_total: torch >= 2.4's name, cuda_time_total before it
            t = getattr(evt, "device_time_total", None)
            total_us += t if t is not None else evt.cuda_time_total
    if total_us == 0.0:
        raise RuntimeError("the torch profiler recorded no GPU kernels (is CUPTI available?)")
    return total_us / reps / 1e3


def clear_grads(inputs: dict[str, torch.Tensor]) -> None:
    for t in inputs.values():
        t.grad = None


@dataclass
class Result:
    case: str
    impl: str
    median_ms: float
    allocated_mb: float
    gb_per_s: float
    kernel_ms: float | None = None  # GPU only: the kernels' own time per call
    vs_compile: float | None = None  # time / torch.compile's time
    vs_eager: float | None = None


def measure(
    case: Case,
    impls: tuple[str, ...] = IMPLS,
    rounds: int = 30,
    warmup: int = 3,
    device: str | torch.device = "cpu",
) -> list[Result]:
    """Median fwd+bwd time of each impl, rounds interleaved so machine noise hits all alike.
    On a GPU each round ends with a synchronize, so it times the kernels, not their launch."""
    inputs = to_device(case.make_inputs(), device)
    sync = synchronizer(device)
    runs = {impl: fwd_bwd(case, impl) for impl in impls}
    for run in runs.values():
        for _ in range(warmup):
            run(inputs)
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    for _ in range(rounds):
        for impl, run in runs.items():
            sync()
            t0 = time.perf_counter()
            run(inputs)
            sync()
            times[impl].append(time.perf_counter() - t0)
    results = []
    on_gpu = torch.device(device).type == "cuda"
    for impl in impls:
        med = statistics.median(times[impl])
        call = functools.partial(runs[impl], inputs)
        clear_grads(inputs)  # the previous gradients would count against the peak's baseline
        mem = allocated_bytes(call, device) / 2**20
        kms = kernel_ms(call, device) if on_gpu else None
        results.append(Result(case.name, impl, med * 1e3, mem, case.min_bytes / med / 1e9, kms))
    by_impl = {r.impl: r for r in results}
    for r in results:
        if "compile" in by_impl:
            r.vs_compile = r.median_ms / by_impl["compile"].median_ms
        if "eager" in by_impl:
            r.vs_eager = r.median_ms / by_impl["eager"].median_ms
    return results
