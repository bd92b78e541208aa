"""The forward every fused ``elbits::*_elbo`` op shares: the likelihood's row kernel, then the
Gaussian KL half, then one error naming every input problem either kernel found.

On CUDA the kernels run on torch's current stream and never sync with the host: input problems
are OR-ed into the device flag word of :mod:`elbits.ops.device_flags` (read by
:func:`elbits.check_device_errors`) instead of raising here.
"""

from typing import NamedTuple

import torch

from .._core import core
from .device_flags import flags_for
from .gaussian_kl import gaussian_kl_into
from .launch import cuda_stream, num_threads
from .validate import raise_flags


class RowKernels(NamedTuple):
    """A likelihood's forward kernels, by their names in :mod:`elbits._C` (csrc/bindings.cpp).

    ``cpu(*args, n_threads)`` returns the input flags; ``cuda(*args, partial, flag_word,
    check_finite, stream)`` takes ``batch * cuda_chunks_per_row(*chunk_args)`` float64 of scratch
    for its per-chunk sums. Looked up when called: a CPU-only build has no ``cuda_*`` functions.
    """

    cpu: str
    cuda: str
    cuda_chunks_per_row: str


def likelihood_and_kl(
    kernels: RowKernels,
    args: tuple,
    chunk_args: tuple[int, ...],
    params: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    out_dtype: torch.dtype,
    compute_grad: bool,
    check_finite: bool,
    always: tuple[str, ...] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``kernels`` on ``args`` (the binding's arguments up to ``out_f64``; it writes recon and
    whatever else the op returns), then the KL. Returns (kl ``[B, Z]`` nats, d kl / d logvar or
    empty). On the CPU, raises one error for every problem found with ``check_finite``, else only
    for the flags in ``always``."""
    if params.is_cuda:
        dev = params.device
        with torch.cuda.device(dev):
            chunks = getattr(core, kernels.cuda_chunks_per_row)(*chunk_args)
            partial = torch.empty(params.shape[0] * chunks, dtype=torch.float64, device=dev)
            getattr(core, kernels.cuda)(
                *args, partial.data_ptr(), flags_for(dev).data_ptr(), check_finite, cuda_stream(params)
            )
            kl, dlogvar, _ = gaussian_kl_into(mu, logvar, out_dtype, compute_grad, check_finite)
        return kl, dlogvar
    flags = getattr(core, kernels.cpu)(*args, num_threads())
    kl, dlogvar, kl_flags = gaussian_kl_into(mu, logvar, out_dtype, compute_grad)
    found = {**flags, **kl_flags}
    raise_flags(found if check_finite else {k: found.get(k, False) for k in always})
    return kl, dlogvar
