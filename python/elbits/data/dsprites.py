"""dSprites, exact and offline: a procedural renderer of the factor grid and a loader for the real npz.

Factor grid (the original's ordering, ``posY`` varying fastest):
``shape`` {0 square, 1 ellipse, 2 heart} (values 1, 2, 3), ``scale`` linspace(0.5, 1, 6),
``orientation`` linspace(0, 2*pi, 40) *including both endpoints* (indices 0 and 39 draw the same image),
``posX``, ``posY`` linspace(0, 1, 32). A colour factor of size 1 comes first, so ``latents_classes`` has
6 columns and ``index = classes @ BASES``. Images are binary 64x64 uint8 {0, 1}.

Geometry (fitted to 100 real images, see docs/data-and-entropy.md): a pixel (row i, column j) is on when its
centre (j + 0.5, i + 0.5) lies inside the shape; the shape's reference point sits at
``(CENTRE0 + SPAN * posX, CENTRE0 + SPAN * posY)`` pixels, it is rotated counter-clockwise as displayed by
``orientation`` and scaled about that point by ``scale``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Optional, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..entropy.factors import factor_entropy
from ..errors import InputError, MissingFileError
from ..units import Quantity
from .npyfile import NpzArchive, first_non_binary

SIZES: tuple[int, ...] = (1, 3, 6, 40, 32, 32)
FACTOR_NAMES: tuple[str, ...] = ("color", "shape", "scale", "orientation", "posX", "posY")
BASES: tuple[int, ...] = tuple(int(np.prod(SIZES[i + 1 :])) for i in range(len(SIZES)))
NUM_IMAGES: int = int(np.prod(SIZES))  # 737,280


def dsprites_factor_entropy() -> Quantity:
    """H of the uniform factor grid, log(1 * 3 * 6 * 40 * 32 * 32): 19.49 bits per sample."""
    return factor_entropy(SIZES)


IMAGE_SIZE = 64

SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * math.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)

# What the real npz's pickled ``metadata`` member says, as constants (elbits never unpickles the member).
METADATA: Mapping[str, Any] = MappingProxyType(
    {
        "title": "dSprites dataset",
        "latents_names": FACTOR_NAMES,
        "latents_sizes": SIZES,
        "latents_possible_values": MappingProxyType(
            {
                "color": (1.0,),
                "shape": (1.0, 2.0, 3.0),
                "scale": tuple(SCALES.tolist()),
                "orientation": tuple(ORIENTATIONS.tolist()),
                "posX": tuple(POSITIONS.tolist()),
                "posY": tuple(POSITIONS.tolist()),
            }
        ),
    }
)

# Geometry in pixels at scale 1 (fitted; see module docstring).
CENTRE0 = 17.0  # reference point of pos = 0, in continuous pixel coordinates
SPAN = 32.0  # pixels from pos = 0 to pos = 1
SQUARE_HALF = 9.6  # half the side of the square
ELLIPSE_A, ELLIPSE_B = 12.8, 7.25  # semi-axes: A along x at orientation 0
# Heart: two lobes (discs of radius R at (+-D, -E)) each joined to the tip (0, T) by its convex hull.
HEART_R, HEART_D, HEART_E, HEART_T = 5.4, 4.36, 3.96, 8.82

Index = Union[int, Sequence[int], np.ndarray, torch.Tensor]


def classes_to_index(classes: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """``[N, 6]`` factor classes -> ``[N]`` flat indices (dot with ``BASES``)."""
    return np.asarray(classes, dtype=np.int64) @ np.asarray(BASES, dtype=np.int64)


def index_to_classes(index: Index) -> np.ndarray:
    """``[N]`` flat indices -> ``[N, 6]`` factor classes (the inverse of :func:`classes_to_index`)."""
    idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
    if idx.size and (idx.min() < 0 or idx.max() >= NUM_IMAGES):
        raise IndexError(f"dSprites indices lie in [0, {NUM_IMAGES}), got {idx.min()}..{idx.max()}")
    return np.stack([(idx // b) % s for b, s in zip(BASES, SIZES)], axis=1)


def classes_to_values(classes: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """``[N, 6]`` classes -> ``[N, 6]`` float values as in the original's ``latents_values``."""
    c = np.asarray(classes, dtype=np.int64)
    return np.stack(
        [
            np.ones(len(c)),
            c[:, 1] + 1.0,
            SCALES[c[:, 2]],
            ORIENTATIONS[c[:, 3]],
            POSITIONS[c[:, 4]],
            POSITIONS[c[:, 5]],
        ],
        axis=1,
    )


def _inside_hull(u: torch.Tensor, v: torch.Tensor, cx: float, cy: float, r: float, px: float, py: float):
    """Mask of points in the convex hull of the disc (cx, cy, r) and the point (px, py)."""
    disc = (u - cx) ** 2 + (v - cy) ** 2 <= r * r
    wx, wy = px - cx, py - cy
    dist = math.hypot(wx, wy)
    alpha = math.acos(min(r / dist, 1.0))
    base = math.atan2(wy, wx)
    t1 = (cx + r * math.cos(base + alpha), cy + r * math.sin(base + alpha))
    t2 = (cx + r * math.cos(base - alpha), cy + r * math.sin(base - alpha))
    # Triangle (P, T1, T2): same sign of the three edge cross products.
    tri = [(px, py), t1, t2]
    signs = []
    for (ax, ay), (bx, by) in zip(tri, tri[1:] + tri[:1]):
        signs.append((bx - ax) * (v - ay) - (by - ay) * (u - ax))
    s0, s1, s2 = signs
    tri_mask = ((s0 >= 0) & (s1 >= 0) & (s2 >= 0)) | ((s0 <= 0) & (s1 <= 0) & (s2 <= 0))
    return disc | tri_mask


def _shape_mask(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inside test in shape coordinates (pixels at scale 1, y down)."""
    if shape == 0:
        return torch.maximum(u.abs(), v.abs()) <= SQUARE_HALF
    if shape == 1:
        return (u / ELLIPSE_A) ** 2 + (v / ELLIPSE_B) ** 2 <= 1.0
    left = _inside_hull(u, v, -HEART_D, -HEART_E, HEART_R, 0.0, HEART_T)
    return left | _inside_hull(u, v, HEART_D, -HEART_E, HEART_R, 0.0, HEART_T)


_WINDOW = 32  # every shape fits a 32x32 window around its reference point (radius <= 14.5 px)


def render(classes: Union[np.ndarray, torch.Tensor], batch: int = 4096) -> torch.Tensor:
    """Render ``[N, 6]`` factor classes to ``[N, 64, 64]`` uint8 {0, 1} images (deterministic, float64 maths).

    Only a 32x32 window around each reference point is evaluated (a quarter of the pixels).
    """
    c = torch.as_tensor(np.asarray(classes, dtype=np.int64)).reshape(-1, len(SIZES))
    n = c.shape[0]
    out = torch.zeros(n, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
    win = torch.arange(_WINDOW)
    scales = torch.as_tensor(SCALES)
    orients = torch.as_tensor(ORIENTATIONS)
    centres = CENTRE0 + SPAN * torch.as_tensor(POSITIONS)
    for start in range(0, n, batch):
        cb = c[start : start + batch]
        for shape in range(3):
            sel = (cb[:, 1] == shape).nonzero().flatten()
            if sel.numel() == 0:
                continue
            k = cb[sel]
            s = scales[k[:, 2]][:, None]
            th = orients[k[:, 3]]
            cx, cy = centres[k[:, 4]], centres[k[:, 5]]
            hi = IMAGE_SIZE - _WINDOW
            ox = (torch.floor(cx).long() - _WINDOW // 2).clamp(0, hi)  # window origins
            oy = (torch.floor(cy).long() - _WINDOW // 2).clamp(0, hi)
            cols = ox[:, None] + win  # [m, W]
            rows = oy[:, None] + win
            # Pixel-centre offsets from the reference point, in units of the shape at scale 1.
            dx = (cols + 0.5 - cx[:, None]) / s
            dy = (rows + 0.5 - cy[:, None]) / s
            cos, sin = torch.cos(th)[:, None, None], torch.sin(th)[:, None, None]
            # Counter-clockwise as displayed (y down): shape coords = R(theta) applied to the offset.
            u = cos * dx[:, None, :] - sin * dy[:, :, None]
            v = sin * dx[:, None, :] + cos * dy[:, :, None]
            mask = _shape_mask(shape, u, v).to(torch.uint8)
            img = (start + sel)[:, None, None]
            out[img, rows[:, :, None], cols[:, None, :]] = mask
    return out


def render_index(index: Index, batch: int = 4096) -> torch.Tensor:
    """Render flat dSprites indices to ``[N, 64, 64]`` uint8 images."""
    return render(index_to_classes(index), batch=batch)


def iter_images(indices: Optional[Index] = None, batch: int = 8192):
    """Yield ``[b, 64, 64]`` uint8 batches of the procedural set in index order (bounded memory)."""
    idx = np.arange(NUM_IMAGES) if indices is None else np.atleast_1d(np.asarray(indices, dtype=np.int64))
    for start in range(0, len(idx), batch):
        yield render_index(idx[start : start + batch], batch=batch)


def seeded_subset(n: int, size: Optional[int], seed: int = 0) -> Optional[np.ndarray]:
    """``size`` of the positions ``range(n)`` drawn without replacement by ``np.random.default_rng(seed)``,
    sorted;
    ``None`` (every position) when ``size`` is ``None`` or at least ``n``."""
    if size is None or size >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, int(size), replace=False))


class ProceduralDSprites(Dataset):
    """The dSprites factor grid rendered on demand: item -> (image ``[1, 64, 64]`` float32, classes ``[6]``).

    ``indices`` picks a subset of flat indices (default: all 737,280). ``cache=True`` renders the subset
    once and keeps it bit-packed (512 bytes per image; 377 MB for the full set).
    """

    def __init__(self, indices: Optional[Index] = None, cache: bool = False) -> None:
        self.indices = (
            np.arange(NUM_IMAGES) if indices is None else np.atleast_1d(np.asarray(indices, np.int64))
        )
        self.classes = index_to_classes(self.indices)
        self._packed: Optional[np.ndarray] = None
        if cache:
            packed = [np.packbits(b.numpy(), axis=-1) for b in iter_images(self.indices)]
            self._packed = np.concatenate(packed) if packed else np.zeros((0, 64, 8), np.uint8)

    def __len__(self) -> int:
        return len(self.indices)

    def images(self, items: Index) -> torch.Tensor:
        """``[N, 64, 64]`` uint8 images of dataset positions ``items``."""
        items = np.atleast_1d(np.asarray(items, dtype=np.int64))
        if self._packed is not None:
            return torch.from_numpy(np.unpackbits(self._packed[items], axis=-1))
        return render(self.classes[items])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.images([i])[0]
        return img[None].float(), torch.from_numpy(self.classes[i])


class NpzDSprites(Dataset):
    """The real ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``; same interface.

    Never downloads: pass the path of a local copy. Only the ``imgs`` and ``latents_classes`` arrays are read,
    with pickling off; the archive's pickled ``metadata`` is never unpickled (its facts are
    :data:`METADATA`). Both are checked before use (:func:`load_npz`): a file that fails raises
    :class:`~elbits.errors.InputError` naming it. ``imgs`` is memory-mapped when stored uncompressed, else
    read into memory (the original is compressed: 3 GB).
    """

    def __init__(self, path: Union[str, Path], indices: Optional[Index] = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"no dSprites npz at {path} (elbits never downloads it)")
        self.path = path
        self._imgs, self._classes = load_npz(path)
        self.metadata = METADATA
        n = self._imgs.shape[0]
        self.indices = np.arange(n) if indices is None else np.atleast_1d(np.asarray(indices, np.int64))
        self.classes = np.asarray(self._classes[self.indices], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, items: Index) -> NpzDSprites:
        """This dataset restricted to positions ``items``, sharing the loaded archive (no second read)."""
        items = np.atleast_1d(np.asarray(items, np.int64))
        out = copy.copy(self)
        out.indices, out.classes = self.indices[items], self.classes[items]
        return out

    def images(self, items: Index) -> torch.Tensor:
        """``[N, 64, 64]`` uint8 images of dataset positions ``items``."""
        items = np.atleast_1d(np.asarray(items, dtype=np.int64))
        rows = self.indices[items]
        order = np.argsort(rows)  # sorted reads are kinder to a memory map
        out = np.empty((len(rows), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        out[order] = self._imgs[rows[order]]
        return torch.from_numpy(out)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.images([i])[0]
        return img[None].float(), torch.from_numpy(self.classes[i])


def load_npz(path: Union[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    """``(imgs [N, 64, 64], latents_classes [N, 6])`` of a dSprites npz, every fact checked before use.

    Read with pickling off (an object array is refused, other members are never read). ``imgs``: integer,
    bool or float, every pixel exactly 0 or 1, 1 <= N <= 737,280; ``latents_classes``: integers, one row
    per image, column j in [0, SIZES[j]). Each stored member's CRC-32 is verified. Raises
    :class:`~elbits.errors.InputError` naming the file and what was expected.
    """
    with NpzArchive(path) as arc:
        missing = [m for m in ("imgs", "latents_classes") if m not in arc]
        if missing:
            raise InputError(
                f"{path}: no {' or '.join(m + '.npy' for m in missing)} member; a dSprites npz holds "
                f"imgs [N, 64, 64] and latents_classes [N, 6] (it has: {sorted(arc.members) or 'none'})"
            )
        h_img, h_cls = arc.header("imgs"), arc.header("latents_classes")
        where = f"{path} (imgs)"
        if h_img.dtype.kind not in "biuf":
            raise InputError(f"{where}: dtype {h_img.dtype}; expected binary images (uint8 0/1)")
        if (
            len(h_img.shape) != 3
            or h_img.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE)
            or not 1 <= h_img.shape[0] <= NUM_IMAGES
        ):
            raise InputError(
                f"{where}: shape {list(h_img.shape)}; expected [N, 64, 64] with 1 <= N <= {NUM_IMAGES}"
            )
        n = h_img.shape[0]
        if h_cls.dtype.kind not in "iu" or h_cls.shape != (n, len(SIZES)):
            raise InputError(
                f"{path} (latents_classes): {list(h_cls.shape)} {h_cls.dtype}; expected [{n}, "
                f"{len(SIZES)}] integers, one row of factor classes per image"
            )
        classes = np.asarray(arc.read("latents_classes", h_cls, mmap=False))
        for j, (name, size) in enumerate(zip(FACTOR_NAMES, SIZES)):
            col = classes[:, j]
            if col.min() < 0 or col.max() >= size:
                bad = col[(col < 0) | (col >= size)][0]
                raise InputError(f"{path} (latents_classes): {name} class {bad}; expected 0..{size - 1}")
        imgs = arc.read("imgs", h_img)
    bad_px = first_non_binary(imgs)
    if bad_px is not None:
        raise InputError(
            f"{where}: pixel value {bad_px!r} ({imgs.dtype}); expected every pixel 0 or 1 (binary dSprites)"
        )
    return imgs, classes
