"""fwd+bwd of Bernoulli+KL: elbits vs eager PyTorch vs torch.compile, same inputs, same run.

Run: make bench   (or: cd benchmarks && python -m pytest -q). `elbits bench` gives the
same comparison with interleaved rounds as a table or JSON.
"""

import pytest
import torch

from elbits.benchmarking import IMPLS, allocated_bytes, bernoulli_case, fwd_bwd


@pytest.mark.parametrize("batch", [256, 1024])
@pytest.mark.parametrize("impl", IMPLS)
def test_bernoulli_kl_fwd_bwd(benchmark, impl, batch):
    case = bernoulli_case(batch)
    inputs = case.make_inputs()
    run = fwd_bwd(case, impl)
    for _ in range(3):  # compile and warm the allocator outside the timing
        run(inputs)
    benchmark.group = f"{case.name} fwd+bwd"
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info["allocated_mb"] = allocated_bytes(lambda: run(inputs)) / 2**20
    benchmark.pedantic(run, args=(inputs,), rounds=30 if batch == 256 else 10, warmup_rounds=2)


@pytest.mark.parametrize("impl", ["custom_op", "core_direct"])
def test_dispatch_overhead_tiny_batch(benchmark, impl):
    """Cost of the torch.library custom-op path on a tiny input (the kernel itself is ~nothing)."""
    from elbits._core import core
    from elbits.ops.bernoulli import bernoulli_elbo

    x, t = torch.randn(1, 16), torch.zeros(1, 16)
    mu = lv = torch.zeros(1, 2)
    recon = torch.empty(1)
    if impl == "custom_op":
        benchmark(lambda: bernoulli_elbo(x, t, mu, lv, 1.0, False, True))
    else:
        benchmark(
            lambda: core.bernoulli_nll_rows(
                x.data_ptr(), 0, 16, t.data_ptr(), 0, 16, 1, 16, 0, 1.0, recon.data_ptr(), False, 1
            )
        )
    benchmark.group = "dispatch overhead 1x16"
    benchmark.extra_info["impl"] = impl
