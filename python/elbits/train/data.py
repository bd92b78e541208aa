"""Training data: the dSprites subset, fast batch reads, the deterministic index stream and the data's
budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from .. import entropy as E
from ..data import dsprites as ds
from ..data.batches import fetch
from ..data.colour_sprites import colour_sprites
from ..data.images import ImageFolder
from ..data.photos import photo_patches
from ..errors import InputError

CACHE_LIMIT = 1 << 17  # training sets up to this size are rendered once and kept bit-packed (64 MB)
BUDGET_LIMIT = 1 << 18  # H(X) and sum_i H(X_i) of the training set are computed up to this size


def build_dataset(npz: Optional[str] = None, train_size: Optional[int] = None, data_seed: int = 0) -> Dataset:
    """dSprites (procedural, or the real ``npz``), restricted to ``train_size`` images drawn without
    replacement
    by ``np.random.default_rng(data_seed)`` and sorted (``None``: every image)."""
    if npz:
        data = ds.NpzDSprites(npz)
        idx = ds.seeded_subset(len(data), train_size, data_seed)
        return data if idx is None else data.subset(idx)
    idx = ds.seeded_subset(ds.NUM_IMAGES, train_size, data_seed)
    size = ds.NUM_IMAGES if idx is None else len(idx)
    return ds.ProceduralDSprites(idx, cache=size <= CACHE_LIMIT)


class LevelImages(Dataset):
    """A training set of 8-bit images held as levels ``[N, C, H, W]`` uint8 (an array or a memory map),
    optionally restricted to the rows ``index``.

    ``images(items)`` (the batch read training uses) and ``ds[i]`` give float32 level / 255 in [0, 1], on the
    8-bit grid, which the 8-bit likelihoods read back as the exact levels; ``source`` names the set, and
    ``factor_bits`` is log2 of its factor grid when it has one (colour sprites).
    """

    def __init__(
        self,
        levels: Any,
        source: str,
        factor_bits: Optional[float] = None,
        index: Optional[np.ndarray] = None,
    ) -> None:
        if not (isinstance(levels, np.ndarray) and levels.dtype == np.uint8 and levels.ndim == 4):
            got = getattr(levels, "dtype", type(levels).__name__)
            raise InputError(f"{source}: expected uint8 levels [N, C, H, W], got {got} {np.shape(levels)}")
        self.levels, self.source, self.factor_bits = levels, source, factor_bits
        self.index = None if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.levels) if self.index is None else len(self.index)

    def rows(self, items: Any) -> np.ndarray:
        """uint8 levels ``[len(items), C, H, W]`` of positions ``items``."""
        items = np.asarray(items, dtype=np.int64)
        rows = items if self.index is None else self.index[items]
        order = np.argsort(rows, kind="stable")  # sorted reads are kinder to a memory map
        out = np.empty((len(rows), *self.levels.shape[1:]), np.uint8)
        out[order] = self.levels[rows[order]]
        return out

    def images(self, items: Any) -> torch.Tensor:
        return torch.from_numpy(self.rows(items)).float().div_(255.0)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images([i])[0]


def _halve(levels: np.ndarray) -> np.ndarray:
    """2x2 box mean of uint8 levels ``[N, C, H, W]``, rounded half up (deterministic, no resampler)."""
    n, c, h, w = levels.shape
    blocks = levels.reshape(n, c, h // 2, 2, w // 2, 2).astype(np.uint16).sum(axis=(3, 5))
    return ((blocks + 2) // 4).astype(np.uint8)


def colour_training_set(
    data: str,
    *,
    size: int = 64,
    images: Optional[str] = None,
    preprocess: Optional[str] = None,
    train_size: Optional[int] = None,
    data_seed: int = 0,
) -> LevelImages:
    """The 8-bit colour training set ``data`` names, as :class:`LevelImages` ``[N, C, size, size]``.

    ``colour-sprites``: the generated set (64 px; at 32 px each 2x2 block's mean level); ``photos``:
    :func:`elbits.data.photos.photo_patches`; ``images``: the folder (or image file, or uint8 array file)
    ``images`` read by :class:`elbits.data.images.ImageFolder` with ``preprocess``. At most ``train_size``
    images, drawn without replacement by ``np.random.default_rng(data_seed)`` and sorted (a set no larger
    is used whole).
    """
    factor_bits: Optional[float] = None
    if data == "colour-sprites":
        sprites = colour_sprites()
        levels = np.ascontiguousarray(sprites.images.transpose(0, 3, 1, 2))
        if size != levels.shape[-1]:
            levels = _halve(levels)
        factor_bits, what = sprites.factor_bits, "colour-sprites"
    elif data == "photos":
        levels = np.asarray(photo_patches(size))
        what = "scikit-image photo patches"
    elif data == "images":
        if images is None:
            raise InputError("data 'images' needs the folder of images (--images PATH)")
        levels = ImageFolder(images, size=size, preprocess=preprocess).images
        what = f"the images of {images}"
    else:
        raise InputError(f"{data!r} is not a colour data set; expected one of colour-sprites, photos, images")
    if len(levels) < 1:
        raise InputError(f"{what}: no images")
    if tuple(levels.shape[2:]) != (size, size):
        raise InputError(f"{what} are {list(levels.shape[1:])}; expected [C, {size}, {size}]")
    idx = ds.seeded_subset(len(levels), train_size, data_seed)
    n = len(levels) if idx is None else len(idx)
    source = f"{n} images {list(levels.shape[1:])} of {what}"
    return LevelImages(levels, source, factor_bits if idx is None else None, idx)


def training_set(cfg: Any) -> Dataset:
    """The training set a :class:`~elbits.train.TrainConfig` names (``data``, ``npz``, ``train_size`` ...)."""
    if not cfg.colour:
        return build_dataset(cfg.npz, cfg.train_size, cfg.data_seed)
    return colour_training_set(
        cfg.data,
        size=cfg.image_size,
        images=cfg.images,
        preprocess=cfg.preprocess,
        train_size=cfg.train_size,
        data_seed=cfg.data_seed,
    )


def check_images(x: torch.Tensor, where: str = "the dataset's images") -> None:
    """An :class:`InputError` unless ``x`` holds finite values in [0, 1] (the scale training reads)."""
    if x.numel() == 0:
        raise InputError(f"{where} are empty ({list(x.shape)})")
    lo, hi = (float(v) for v in torch.aminmax(x))
    if not (0.0 <= lo and hi <= 1.0):  # NaN fails both
        hint = " (8-bit values? divide by 255)" if hi > 1.0 and hi <= 255.0 and lo >= 0 else ""
        raise InputError(
            f"{where} hold values in [{lo:.4g}, {hi:.4g}]{hint}; expected finite values in [0, 1]"
        )


class IndexStream:
    """Which dataset positions each step trains on, for any step: resumable without replaying.

    Epoch ``e`` is the order of ``DistributedSampler(shuffle=True, seed=seed, drop_last=True)`` after
    ``set_epoch(e)``, this rank's share cut into batches of ``batch_size`` (an incomplete last batch is
    dropped); step ``k`` is batch ``k % batches_per_epoch`` of epoch ``k // batches_per_epoch``.
    """

    def __init__(self, dataset: Any, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.sampler: DistributedSampler = DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size = int(batch_size)
        self.batches_per_epoch = len(self.sampler) // self.batch_size
        if self.batches_per_epoch < 1:
            raise InputError(
                f"{len(dataset)} images over {world} process(es) give less than one batch of "
                f"{batch_size}; expected at least {batch_size * world} images or a smaller batch_size"
            )
        self._epoch: Optional[int] = None
        self._order: list[int] = []

    def epoch_of(self, step: int) -> int:
        return step // self.batches_per_epoch

    def batch(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.batches_per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._order = list(iter(self.sampler))
            self._epoch = epoch
        return self._order[k * self.batch_size : (k + 1) * self.batch_size]


def step_seed(seed: int, step: int, rank: int) -> int:
    """The torch seed of one step on one rank (the z noise), independent of where a run was resumed."""
    return int(np.random.SeedSequence([int(seed), int(step), int(rank)]).generate_state(1, np.uint64)[0] >> 1)


@dataclass(frozen=True)
class Budget:
    """What the data needs, bits per image, computed from the training images themselves.

    ``empirical_bits``: H(X) of the uniform distribution over the training set, exact by de-duplication;
    ``marginal_sum_bits``: sum_i H(X_i) of its subpixels, on the grid ``levels`` (2: binary, 256: 8-bit;
    None when the values are on neither, then no marginals); ``factor_bits``: log2 of the dSprites factor
    grid (19.49 bits), for dSprites data, or of the colour sprites' grid (all its images are distinct, so
    this is log2 N, the set's H(X)). Unknown figures are None and ``note`` says why.
    """

    factor_bits: Optional[float]
    empirical_bits: Optional[float]
    marginal_sum_bits: Optional[float]
    images: int
    distinct: Optional[int]
    source: str
    levels: Optional[int] = None
    note: Optional[str] = None

    @property
    def known_bits(self) -> Optional[float]:
        """The budget H of the bound H - D <= R: H(X) of the training set; for the whole dSprites grid, when
        not computed, its factor entropy (an upper bound); None when unknown."""
        return self.empirical_bits if self.empirical_bits is not None else self.factor_bits

    @property
    def bits(self) -> float:
        """:attr:`known_bits`, or an :class:`InputError` saying why it is unknown."""
        if self.known_bits is None:
            raise InputError(
                f"the entropy budget H(X) of {self.source} is unknown ({self.note}); "
                "give the target in bits (target_bits / --target-bits)"
            )
        return self.known_bits

    def to_dict(self) -> dict[str, Any]:
        return {
            "factor_bits": self.factor_bits,
            "empirical_bits": self.empirical_bits,
            "marginal_sum_bits": self.marginal_sum_bits,
            "images": self.images,
            "distinct": self.distinct,
            "source": self.source,
            "budget_bits": self.known_bits,
            "levels": self.levels,
            "note": self.note,
        }


def _levels(x: torch.Tensor) -> tuple[torch.Tensor, Optional[int]]:
    """The 8-bit levels ``round(255 x)`` as uint8, and the grid ``x`` lies on: 2 when binary, 256 on the
    8-bit grid level / 255, None on neither."""
    pos = x * 255.0
    lv = pos.round()
    if bool(((x == 0) | (x == 1)).all()):
        return lv.to(torch.uint8), 2
    # float32 holds level / 255 within 1e-5 of a level: 0.01 of a level is far off the grid
    return lv.to(torch.uint8), 256 if float((pos - lv).abs().max()) <= 0.01 else None


def data_budget(dataset: Any, limit: int = BUDGET_LIMIT, batch: int = 8192) -> Budget:
    """:class:`Budget` of a training set, computed now over all its images (at most ``limit``; beyond it
    H(X) is unknown, or the factor entropy of the whole dSprites grid). The images are checked on the way
    (:func:`check_images`): finite values in [0, 1]."""
    n = len(dataset)
    fac: Optional[float] = None
    if isinstance(dataset, (ds.NpzDSprites, ds.ProceduralDSprites)):
        fac = E.factor_entropy(ds.SIZES).bits
        source = (
            f"{n} images of the real dSprites npz {dataset.path.name}"
            if isinstance(dataset, ds.NpzDSprites)
            else f"{n} images of procedural dSprites" + (" (the whole grid)" if n == ds.NUM_IMAGES else "")
        )
        if n > limit:
            return Budget(
                fac, None, None, n, None, source, 2, f"H(X) not computed over more than {limit} images"
            )
        # dSprites pixels are 0/1 by construction (the npz reader checks them): one counting pass.
        emp, marg = E.image_entropies(
            dataset.images(np.arange(start, min(start + batch, n))) for start in range(0, n, batch)
        )
        return Budget(fac, emp.entropy.bits, marg.total.bits, n, int(emp.distinct), source, 2)
    if n < 1:
        raise InputError("the dataset is empty; expected at least one image")
    if isinstance(dataset, LevelImages):
        # 8-bit levels by construction: H(X) is log2 N when all N are distinct (the entropy of the uniform
        # distribution over the set), less when some repeat.
        if n > limit:
            note = f"H(X) not computed over more than {limit} images"
            return Budget(dataset.factor_bits, None, None, n, None, dataset.source, 256, note)
        emp, marg = E.image_entropies(
            (dataset.rows(np.arange(start, min(start + batch, n))) for start in range(0, n, batch)),
            levels=256,
        )
        return Budget(
            dataset.factor_bits, emp.entropy.bits, marg.total.bits, n, int(emp.distinct), dataset.source, 256
        )
    shape = list(fetch(dataset, [0]).shape[1:])
    source = f"{n} images {shape} of the given {type(dataset).__name__}"
    if n > limit:
        return Budget(None, None, None, n, None, source, None, f"not computed over more than {limit} images")
    step = min(batch, 1024)  # items are stacked one by one: smaller batches
    starts = range(0, n, step)

    def batches():
        for start in starts:
            yield start, fetch(dataset, np.arange(start, min(start + step, n)))

    # Pass 1: check the values, find the grid, count distinct images by their levels (equal images that
    # differ in float rounding count once).
    grids: set[Optional[int]] = set()
    counter = E.ImageCounter()
    for start, x in batches():
        check_images(x, f"dataset images {start}..{start + len(x) - 1}")
        lv, grid = _levels(x)
        grids.add(grid)
        counter.update(lv)
    if None in grids:
        # Off any grid: distinct images are distinct float bytes (+ 0.0 makes -0.0 the bytes of 0.0).
        counter = E.ImageCounter()
        for _, x in batches():
            counter.update(x + 0.0)
        emp = counter.result()
        return Budget(
            None,
            emp.entropy.bits,
            None,
            n,
            int(emp.distinct),
            source,
            None,
            "values are not on a binary or 8-bit grid: no pixel marginals",
        )
    emp = counter.result()
    levels = max(g for g in grids if g is not None)
    hist = E.PixelHistogram(levels=levels)
    for _, x in batches():
        hist.update(x.to(torch.uint8) if levels == 2 else _levels(x)[0])
    return Budget(None, emp.entropy.bits, hist.result().total.bits, n, int(emp.distinct), source, levels)
