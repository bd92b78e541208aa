"""Training data: the dSprites subset, fast batch reads, the deterministic index stream and the data's
budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from ..data import dsprites as ds
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


def fetch(dataset: Any, items: Any) -> torch.Tensor:
    """``[B, C, H, W]`` float32 images of dataset positions ``items``.

    Uses the dataset's ``images(items)`` batch read when it has one (dSprites), else stacks ``dataset[i]``
    (an image ``[C, H, W]`` or ``[H, W]``, or a tuple / list whose first element is one). Values are not
    checked here: :func:`check_images` does that.
    """
    items = np.asarray(items, dtype=np.int64)
    if hasattr(dataset, "images"):
        x = torch.as_tensor(dataset.images(items))
    else:
        out = []
        for i in items.tolist():
            it = dataset[i]
            img = it[0] if isinstance(it, (tuple, list)) and len(it) > 0 else it
            if not isinstance(img, (torch.Tensor, np.ndarray)):
                raise InputError(
                    f"dataset[{i}] is a {type(it).__name__}"
                    + (f" whose first element is a {type(img).__name__}" if img is not it else "")
                    + "; expected an image tensor [C, H, W] in [0, 1], or a tuple starting with one"
                )
            out.append(torch.as_tensor(img))
        shapes = {tuple(t.shape) for t in out}
        if len(shapes) > 1:
            raise InputError(
                f"dataset images differ in shape ({sorted(shapes)[:3]}); expected one shape [C, H, W]"
            )
        x = torch.stack(out)
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4:
        raise InputError(f"dataset images are {list(x.shape[1:])}; expected [C, H, W] or [H, W]")
    return x.float()


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
    grid (19.49 bits), for dSprites data only. Unknown figures are None and ``note`` says why.
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
    from .. import entropy as E

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
