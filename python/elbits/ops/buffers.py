"""Reuse of the large gradient buffers the CPU kernels write, between calls.

On the CPU, torch hands big allocations straight to glibc, which returns freed
memory to the kernel once enough of it sits at the top of the heap; the next
step's gradient then lands on fresh pages and pays a page fault per 4 KiB page
(~0.2-0.6 ms per 4 MB here, ~60 ms for categorical-256's 96 MB) and a cold
cache. Keeping the last buffer per op and handing it out again once nothing
else can reach its memory removes both costs. CUDA has torch's caching
allocator for this, so only CPU tensors take part.

When is a buffer free? Everything that reaches a storage's memory from Python
holds a tensor over it (``.grad``, views, saved tensors, hooks that kept the
gradient, numpy arrays and DLPack capsules, which hold a tensor) or the
storage's Python object (``untyped_storage()``, ``TypedStorage``). A tensor
raises the storage's use count. A storage object raises it on torch 2.4 and 2.8;
torch 2.13 keeps one storage object per storage for good (it holds a count of
its own whether or not the user does) and hands the user that same object, so
there only the object's Python reference count shows the user's hold. A buffer
is free when both numbers (:func:`_refs`) are what they are for a buffer made
the same way that nothing else reaches (``_ALONE``), and its memory is not
shared with another process. A weak reference to the storage object does not
keep the memory from reuse (it is weak), nor does a raw address (ctypes, a C
extension's saved pointer).

Costs one buffer per op kind held between calls: :func:`release_buffers`
drops them; ``ELBITS_REUSE_BUFFERS=0`` turns reuse off.
"""

import math
import os
import sys
from typing import Optional, Union

import torch

_cache: "dict[str, torch.Tensor]" = {}
_enabled = os.environ.get("ELBITS_REUSE_BUFFERS", "1") != "0"
_storage_use_count = getattr(torch._C, "_storage_Use_Count", None)


def _refs(buf: torch.Tensor) -> tuple[int, int]:
    """(storage use count, Python references to the storage object) of ``buf``'s storage, counting
    the storage object this query fetches (the user's own one, on torch versions that keep one)."""
    assert _storage_use_count is not None
    storage = buf.untyped_storage()
    return _storage_use_count(storage._cdata), sys.getrefcount(storage)


def _new(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    buf = torch.empty(shape, dtype=dtype, device=device)
    # Every cached buffer has had its storage object made once (2.13 keeps it from then on), so
    # that _refs reads all of them in the state _ALONE was measured in.
    buf.untyped_storage()
    return buf


# _refs of a buffer that nothing else reaches, on this torch
_ALONE: Optional[tuple[int, int]] = (
    None if _storage_use_count is None else _refs(_new((1,), torch.float32, torch.device("cpu")))
)


def _reusable(buf: torch.Tensor, shape, dtype: torch.dtype) -> bool:
    return (
        buf.dtype == dtype
        and buf.numel() == math.prod(shape)
        # shared memory (e.g. a .grad sent to another process) may still be read there
        and not buf.is_shared()
        and _refs(buf) == _ALONE
    )


def gradient_buffer(
    slot: str, shape: Union[torch.Size, tuple[int, ...]], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """An uninitialised contiguous tensor, the previous call's buffer for ``slot`` when free."""
    if not _enabled or _ALONE is None or device.type != "cpu" or torch.is_inference_mode_enabled():
        # (an inference tensor in the cache could never be saved for a later backward)
        return torch.empty(shape, dtype=dtype, device=device)
    buf = _cache.pop(slot, None)  # popped, so two threads never share one buffer
    if buf is None or not _reusable(buf, shape, dtype):
        buf = _new(shape, dtype, device)
    # A separate tensor object over the same storage: autograd may steal it as a
    # leaf's .grad without copying, and its lifetime is what _refs sees. It
    # must exist before the buffer goes back into the cache, or another thread
    # could take the buffer as unowned in between.
    out = buf.detach().view(shape)
    _cache[slot] = buf
    return out


def release_buffers() -> None:
    """Drop the reusable gradient buffers (frees their memory once no tensor uses them)."""
    _cache.clear()
