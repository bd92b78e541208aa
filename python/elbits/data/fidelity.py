"""How close the procedural dSprites is to the real one: best-match IoU over the factor grid."""

from __future__ import annotations

import itertools
import zlib
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from . import dsprites as ds
from .npyfile import one_line

GRID_SIZE = 662  # 10 images of 64 pixels, each with 2 pixels of white padding before it, and 2 after the last


def load_reference_grid(path: Union[str, Path]) -> np.ndarray:
    """The 100 real images of ``real_samples_10x10.png`` as ``[100, 64, 64]`` uint8 {0, 1}.

    Image (r, c) occupies rows 2 + 66r ... + 63 and columns 2 + 66c ... + 63 of the 662x662 grid. Only that
    layout is read: a PNG of another size, with grey levels other than 0 and 255, or with ink in the white
    padding raises :class:`~elbits.errors.InputError` naming the file (its size is checked before the
    pixels are decoded).
    """
    expected = f"expected the 10x10 grid of 64x64 binary images ({GRID_SIZE}x{GRID_SIZE} pixels, 0 or 255)"
    try:
        with Image.open(path, formats=["PNG"]) as im:
            if im.size != (GRID_SIZE, GRID_SIZE):
                raise InputError(f"{path}: a {im.size[0]}x{im.size[1]} image; {expected}")
            grid = np.asarray(im.convert("L"))
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a PNG image; {expected}") from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, Image.DecompressionBombError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"{path}: corrupt PNG ({one_line(e)}); {expected}") from None
    odd = grid[(grid != 0) & (grid != 255)]
    if odd.size:
        raise InputError(f"{path}: grey level {int(odd[0])}; {expected}")
    images = np.zeros(grid.shape, bool)
    for k in range(10):
        images[2 + 66 * k : 66 + 66 * k, :] = True
    inside = images & images.T
    if (grid[~inside] != 255).any():
        raise InputError(f"{path}: dark pixels in the white padding between images; {expected}")
    out = np.zeros((100, 64, 64), np.uint8)
    for r, c in itertools.product(range(10), range(10)):
        out[10 * r + c] = grid[2 + 66 * r : 66 + 66 * r, 2 + 66 * c : 66 + 66 * c] > 127
    return out


def _iou(cands: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    a = cands.reshape(len(cands), -1).bool()
    b = target.reshape(1, -1).bool()
    inter = (a & b).sum(1).double()
    union = (a | b).sum(1).double()
    return inter / union.clamp_min(1)


def _grid(shapes, scales, orients, xs, ys) -> np.ndarray:
    c = np.array(list(itertools.product([0], shapes, scales, orients, xs, ys)), dtype=np.int64)
    return c


def best_match(
    image: np.ndarray, coarse_orient_step: int = 2, pos_radius: int = 1
) -> tuple[float, np.ndarray]:
    """Best IoU of a real binary 64x64 image against the procedural grid, and the matching classes ``[6]``.

    Coarse-to-fine: every shape and scale, every ``coarse_orient_step``-th orientation, positions within
    ``pos_radius`` steps of the one the image's centroid suggests; then the best candidate's neighbourhood
    (scale +-1, orientation +-3, position +-2) at full resolution.
    """
    img = torch.as_tensor(np.asarray(image)).to(torch.uint8)
    ys, xs = np.nonzero(np.asarray(image))
    if len(xs) == 0:
        return 0.0, np.zeros(6, np.int64)
    step = ds.SPAN / (len(ds.POSITIONS) - 1)
    last = len(ds.POSITIONS) - 1
    px = min(max(int(round((xs.mean() + 0.5 - ds.CENTRE0) / step)), 0), last)
    py = min(max(int(round((ys.mean() + 0.5 - ds.CENTRE0) / step)), 0), last)

    def near(p: int, r: int) -> list[int]:
        return [q for q in range(p - r, p + r + 1) if 0 <= q < len(ds.POSITIONS)]

    coarse = _grid(
        range(3), range(6), range(0, 40, coarse_orient_step), near(px, pos_radius), near(py, pos_radius)
    )
    scores = _iou(ds.render(coarse), img)
    best = coarse[int(scores.argmax())]
    _, sh, sc, o, bx, by = best.tolist()
    fine = _grid(
        [sh],
        [s for s in range(sc - 1, sc + 2) if 0 <= s < 6],
        [(o + d) % 40 for d in range(-3, 4)],
        near(bx, 2),
        near(by, 2),
    )
    scores = _iou(ds.render(fine), img)
    i = int(scores.argmax())
    return float(scores[i]), fine[i]


def match_all(images: np.ndarray, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Best-match IoU ``[N]`` and classes ``[N, 6]`` for a stack of real images."""
    res = [best_match(im, **kw) for im in images]
    return np.array([r[0] for r in res]), np.stack([r[1] for r in res])
