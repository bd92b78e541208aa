"""Reuse of the large gradient buffers the CPU kernels write, between calls.

On the CPU, torch hands big allocations straight to glibc, which returns freed
memory to the kernel once enough of it sits at the top of the heap; the next
step's gradient then lands on fresh pages and pays a page fault per 4 KiB page
(~0.2-0.6 ms per 4 MB here, ~60 ms for categorical-256's 96 MB) and a cold
cache. Keeping the last buffer per op and handing it out again once nobody
else references its storage removes both costs. A buffer is reused only when
the cache holds the sole reference to its storage (the previous step's
gradient has been consumed or dropped), so a live ``.grad``, a saved tensor or
a view keeps it from being overwritten. CUDA has torch's caching allocator for
this, so only CPU tensors take part.

Costs one buffer per op kind held between calls: :func:`release_buffers`
drops them; ``ELBITS_REUSE_BUFFERS=0`` turns reuse off.
"""

from __future__ import annotations

import math
import os

import torch

_cache: dict[str, torch.Tensor] = {}
_enabled = os.environ.get("ELBITS_REUSE_BUFFERS", "1") != "0"
_storage_use_count = getattr(torch._C, "_storage_Use_Count", None)


def _sole_owner(buf: torch.Tensor) -> bool:
    # 2 = the cached tensor + the temporary storage object made for the query
    assert _storage_use_count is not None
    return _storage_use_count(buf.untyped_storage()._cdata) == 2


def _reusable(buf: torch.Tensor, shape, dtype: torch.dtype) -> bool:
    return (
        buf.dtype == dtype
        and buf.numel() == math.prod(shape)
        # shared memory (e.g. a .grad sent to another process) may still be read there
        and not buf.is_shared()
        and _sole_owner(buf)
    )


def gradient_buffer(slot: str, shape: torch.Size | tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised contiguous tensor, the previous call's buffer for ``slot`` when free."""
    if not _enabled or _storage_use_count is None or device.type != "cpu" or torch.is_inference_mode_enabled():
        # (an inference tensor in the cache could never be saved for a later backward)
        return torch.empty(shape, dtype=dtype, device=device)
    buf = _cache.pop(slot, None)  # popped, so two threads never share one buffer
    if buf is None or not _reusable(buf, shape, dtype):
        buf = torch.empty(shape, dtype=dtype, device=device)
    # A separate tensor object over the same storage: autograd may steal it as a
    # leaf's .grad without copying, and its lifetime is what _sole_owner sees. It
    # must exist before the buffer goes back into the cache, or another thread
    # could take the buffer as unowned in between.
    out = buf.detach().view(shape)
    _cache[slot] = buf
    return out


def release_buffers() -> None:
    """Drop the reusable gradient buffers (frees their memory once no tensor uses them)."""
    _cache.clear()
