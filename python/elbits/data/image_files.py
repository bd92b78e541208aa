"""Binary 64x64 evaluation images from a file (a ``.npy`` or the reference PNG grid), or a seeded subset of
the procedural dSprites grid: what ``elbits evaluate`` and ``elbits compress`` read."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..errors import InputError, MissingFileError
from . import dsprites as ds
from .fidelity import load_reference_grid
from .npyfile import NPY_MAGIC, PNG_MAGIC, describe_start, first_non_binary, load_npy, npy_header

PathLike = Union[str, Path]


def load_image_file(path: PathLike) -> torch.Tensor:
    """``[N, 1, 64, 64]`` uint8 {0, 1} images from a ``.npy`` (``[N, 64, 64]`` or ``[N, 1, 64, 64]``; bool,
    integer or float, every value 0 or 1) or from the 10x10 reference PNG grid (see
    /work/shared/reference/README.md), told apart by their content, not their names.

    Read with pickling off; anything else raises :class:`~elbits.errors.InputError` naming the file and
    what was expected.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"no images file at {p}")
    with p.open("rb") as f:
        lead = f.read(16)
    if lead.startswith(PNG_MAGIC):
        arr = load_reference_grid(p)
    elif lead.startswith(NPY_MAGIC):
        head = npy_header(p)
        shape = head.shape
        if len(shape) == 4 and shape[1] == 1:
            shape = (shape[0], *shape[2:])
        if head.dtype.kind not in "biuf" or len(shape) != 3 or shape[1:] != (64, 64) or shape[0] < 1:
            raise InputError(
                f"{p}: {list(head.shape)} {head.dtype}; expected images [N, 64, 64] or "
                "[N, 1, 64, 64] (N >= 1) of 0/1 values"
            )
        arr = load_npy(p, head).reshape(shape)
        bad = first_non_binary(arr)
        if bad is not None:
            raise InputError(
                f"{p}: pixel value {bad!r} ({arr.dtype}); expected every pixel 0 or 1 (binary dSprites)"
            )
    else:
        raise InputError(
            f"{p}: not a .npy array or a PNG grid ({describe_start(lead)}); expected uint8 0/1 "
            "images [N, 64, 64] in a .npy, or the 10x10 reference PNG grid"
        )
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).unsqueeze(1)  # a copy: arr may map the file


def procedural_set(limit: Optional[int] = 16384, seed: int = 0) -> ds.ProceduralDSprites:
    """``limit`` images of the procedural grid drawn without replacement (seeded, sorted); ``None``: all
    737,280."""
    return ds.ProceduralDSprites(ds.seeded_subset(ds.NUM_IMAGES, limit, seed), cache=False)


def describe_procedural(data: ds.ProceduralDSprites, seed: int) -> str:
    """The ``source`` line of a :func:`procedural_set`."""
    return f"{len(data)} procedural dSprites images" + (
        " (the whole grid)" if len(data) == ds.NUM_IMAGES else f" (random subset, seed {seed})"
    )


__all__ = ["describe_procedural", "load_image_file", "procedural_set"]
