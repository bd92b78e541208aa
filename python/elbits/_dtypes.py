"""torch dtype <-> the core's DType codes (csrc/include/elbits/dtypes.h)."""

from __future__ import annotations

import torch

CODES: dict[torch.dtype, int] = {
    torch.float32: 0,
    torch.float64: 1,
    torch.float16: 2,
    torch.bfloat16: 3,
    torch.uint8: 4,
    torch.bool: 5,
    torch.int64: 6,
}

FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def code(dtype: torch.dtype) -> int:
    return CODES[dtype]


def out_dtype(*inputs: torch.dtype) -> torch.dtype:
    """Terms are float32, or float64 when a float64 parameter asks for full precision."""
    return torch.float64 if torch.float64 in inputs else torch.float32
