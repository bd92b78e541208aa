"""fwd+bwd of the colour likelihoods + KL: elbits vs eager PyTorch vs torch.compile, same inputs, same run.

The cases are elbits.benchmarking's (as ``elbits bench``): categorical-256 logits [32, 256, 3, 32, 32]
and a K=10 logistic mixture [16, 100, 32, 32], uint8 targets, z=32; categorical-256 also
with the gradient written into the logits (fused_inplace).
Run: cd benchmarks && ../.venv/bin/python -m pytest -q -p no:cacheprovider test_bench_colour.py
(PYTHONPATH=../python for the in-place build). Figures: docs/performance.md.
"""

import pytest
import torch

from elbits.benchmarking import CASES, IMPLS, allocated_bytes, fwd_bwd


def _bench(benchmark, case_name, impl, rounds):
    """fwd+bwd with gradients for the image parameters and the latents. fused_inplace consumes
    its logits (backward overwrites them), so each call gets them back first, outside the timing."""
    case = CASES[case_name]()
    inputs = case.make_inputs()
    run = fwd_bwd(case, impl)
    params = inputs["params"]
    original = params.detach().clone() if impl == "fused_inplace" else None

    def setup():
        if original is not None:
            with torch.no_grad():
                params.copy_(original)  # restore the buffer the previous backward overwrote
        return (inputs,), {}

    for _ in range(2):  # compile, warm the allocator
        run(*setup()[0])
    benchmark.group = f"{case.name} +kl fwd+bwd"
    benchmark.extra_info["impl"] = impl
    setup()
    benchmark.extra_info["allocated_mb"] = allocated_bytes(lambda: run(inputs)) / 2**20
    benchmark.pedantic(run, setup=setup, rounds=rounds, warmup_rounds=1)


@pytest.mark.parametrize("impl", [*IMPLS, "fused_inplace"])
def test_categorical256_fwd_bwd(benchmark, impl):
    _bench(benchmark, "categorical256-32", impl, rounds=8)


@pytest.mark.parametrize("impl", IMPLS)
def test_logistic_mixture_fwd_bwd(benchmark, impl):
    _bench(benchmark, "mixture-16", impl, rounds=10)
