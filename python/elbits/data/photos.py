"""A small natural-image set: patches of the colour photographs that scikit-image ships inside its wheel.

Read by ``skimage.data`` from the files in the installed package (no download: the photographs that need
pooch or a network are not used). Optional: ``pip install 'elbits[colour]'``. Which photographs, in this
order (:func:`photo_names`):

- ``astronaut`` 512x512 (PNG), ``chelsea`` 300x451 (PNG, the cat), ``coffee`` 400x600 (PNG),
  ``motorcycle`` 500x741 (PNG, the left view of ``stereo_motorcycle``), ``rocket`` 427x640 (JPEG),
  ``immunohistochemistry`` 512x512 (PNG, a stained tissue micrograph), ``hubble_deep_field`` 872x1000 (JPEG).

Left out: ``cat`` (the same photograph as ``chelsea``), the right motorcycle view (nearly the left one),
``retina`` (a fifth of its patches are its black border), and drawings (``logo``, ``colorwheel``). The two
JPEG sources are decoded by Pillow's libjpeg: the same bytes on one install, possibly a level apart on
another decoder.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import torch

from ..errors import InputError

_MAX_BYTES = 1 << 31


def _skimage_data():  # type: ignore[no-untyped-def]
    try:  # scikit-image is an optional extra (elbits[colour]), needed only for the photo patches
        import skimage.data as data
    except ImportError:
        raise InputError(
            "the photo patches need scikit-image (its shipped photographs); "
            "install it with: pip install 'elbits[colour]'"
        ) from None
    return data


def photo_names() -> tuple[str, ...]:
    """The scikit-image photographs the patches are cut from, in patch order."""
    return (
        "astronaut",
        "chelsea",
        "coffee",
        "motorcycle",
        "rocket",
        "immunohistochemistry",
        "hubble_deep_field",
    )


@functools.cache
def _photo(name: str) -> np.ndarray:
    data = _skimage_data()
    img = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"skimage.data.{name} is {img.dtype} {list(img.shape)}; expected uint8 [H, W, 3]")
    img.setflags(write=False)
    return img


def _check_side(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= int(value) <= 512:
        raise InputError(f"{what} {value!r}: expected an integer number of pixels, 1 to 512")
    return int(value)


def photo_patches(
    size: int = 32, *, limit: Optional[int] = None, stride: Optional[int] = None
) -> torch.Tensor:
    """uint8 patches ``[N, 3, size, size]`` (levels 0..255) cut from the :func:`photo_names` photographs.

    In each photograph, in that order, patches start at (0, 0) and step by ``stride`` px (None: ``size``,
    non-overlapping) row by row; strips at the right and bottom edges narrower than a patch are dropped.
    N = 2,296 at size 32 and 542 at size 64 (non-overlapping). ``limit``: that many patches spread evenly
    over the whole ordered set (positions ``floor(k * N / limit)``), so every photograph keeps its share.
    Deterministic; raises :class:`~elbits.errors.InputError` when scikit-image is not installed.
    """
    size = _check_side(size, "size")
    stride = size if stride is None else _check_side(stride, "stride")
    images = [_photo(name) for name in photo_names()]
    count = sum(
        ((h - size) // stride + 1) * ((w - size) // stride + 1) for h, w, _ in (i.shape for i in images)
    )
    if count * 3 * size * size > _MAX_BYTES:
        raise InputError(
            f"size {size} with stride {stride} gives {count} patches "
            f"({count * 3 * size * size / 2**30:.1f} GiB); "
            f"expected at most {_MAX_BYTES / 2**30:.0f} GiB: use a larger stride"
        )
    parts = []
    for img in images:
        tiles = np.lib.stride_tricks.sliding_window_view(img, (size, size), axis=(0, 1))[::stride, ::stride]
        parts.append(tiles.reshape(-1, 3, size, size))
    patches = np.concatenate(parts)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise InputError(f"limit {limit!r}: expected a positive number of patches, or None for all")
        n = len(patches)
        if limit < n:
            patches = patches[np.arange(int(limit), dtype=np.int64) * n // int(limit)]
    return torch.from_numpy(np.ascontiguousarray(patches))
