"""fwd+bwd on a CUDA GPU: elbits vs eager PyTorch vs torch.compile, same inputs, same run.

Skipped without a GPU and a CUDA build of elbits. Each timed call ends with a synchronize, so the
figures are kernel time plus launch overhead, as a training step sees them. The memory column is
the allocator's peak during one call, above what was allocated before it; the kernels' own
GPU time per call (torch profiler) is printed beside the ratios.
Run: cd benchmarks && python -m pytest -q -p no:cacheprovider test_bench_cuda.py
"""

import pytest
import torch

from elbits._core import core
from elbits.benchmarking import (
    CASES,
    IMPLS,
    allocated_bytes,
    clear_grads,
    fwd_bwd,
    kernel_ms,
    synchronizer,
    to_device,
)

pytestmark = pytest.mark.skipif(
    not (core.has_cuda and torch.cuda.is_available()), reason="needs a CUDA build of elbits and a GPU"
)
GPU_CASES = [
    "bernoulli-256",
    "bernoulli-8192",
    "categorical256-32",
    "categorical256-256",
    "mixture-16",
    "mixture-256",
]


@pytest.mark.parametrize("name", GPU_CASES)
@pytest.mark.parametrize("impl", IMPLS)
def test_cuda_fwd_bwd(benchmark, impl, name):
    case = CASES[name]()
    inputs = to_device(case.make_inputs(), "cuda")
    run, sync = fwd_bwd(case, impl), synchronizer("cuda")

    def timed():
        run(inputs)
        sync()

    for _ in range(3):  # compile, warm the caching allocator
        timed()
    benchmark.group = f"cuda {case.name} fwd+bwd"
    benchmark.extra_info["impl"] = impl
    clear_grads(inputs)  # else the last round's gradients sit in the peak's baseline
    benchmark.extra_info["allocated_mb"] = allocated_bytes(lambda: run(inputs), "cuda") / 2**20
    benchmark.extra_info["kernel_ms"] = kernel_ms(lambda: run(inputs), "cuda")
    benchmark.pedantic(timed, rounds=50, warmup_rounds=3)
