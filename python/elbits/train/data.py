"""Training data: the dSprites subset, fast batch reads, the deterministic index stream and the data's budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from ..data import dsprites as ds

CACHE_LIMIT = 1 << 17  # training sets up to this size are rendered once and kept bit-packed (64 MB)
BUDGET_LIMIT = 1 << 18  # H(X) and sum_i H(X_i) of the training set are computed up to this size


def build_dataset(npz: Optional[str] = None, train_size: Optional[int] = None, data_seed: int = 0) -> Dataset:
    """dSprites (procedural, or the real ``npz``), restricted to ``train_size`` images drawn without replacement
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
    (the image, or the first element of a tuple item).
    """
    items = np.asarray(items, dtype=np.int64)
    if hasattr(dataset, "images"):
        x = dataset.images(items)
        if x.dim() == 3:
            x = x[:, None]
        return x.float()
    out = []
    for i in items.tolist():
        it = dataset[i]
        out.append(it[0] if isinstance(it, (tuple, list)) else it)
    return torch.stack([torch.as_tensor(t) for t in out]).float()


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
            raise ValueError(
                f"{len(dataset)} images over {world} process(es) give less than one batch of {batch_size}"
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
    """What the data needs, bits per image.

    ``factor_bits``: log2 of the dSprites factor grid (its images' generating entropy, 19.49 bits).
    ``empirical_bits``: H(X) of the uniform distribution over the training set, computed exactly by
    de-duplication (None when not computed); ``marginal_sum_bits``: sum_i H(X_i) of its pixels.
    """

    factor_bits: float
    empirical_bits: Optional[float]
    marginal_sum_bits: Optional[float]
    images: int
    distinct: Optional[int]
    source: str

    @property
    def bits(self) -> float:
        """The budget H the bound H - D <= R uses: H(X) of the training set when known, else the factor entropy."""
        return self.empirical_bits if self.empirical_bits is not None else self.factor_bits

    def to_dict(self) -> dict[str, Any]:
        return {"factor_bits": self.factor_bits, "empirical_bits": self.empirical_bits,
                "marginal_sum_bits": self.marginal_sum_bits, "images": self.images, "distinct": self.distinct,
                "source": self.source, "budget_bits": self.bits}


def data_budget(dataset: Any, limit: int = BUDGET_LIMIT, batch: int = 8192) -> Budget:
    """:class:`Budget` of a training set, computed now: H(X) and sum_i H(X_i) over all its images (when it has
    at most ``limit`` and an ``images`` batch read), and the factor entropy of the dSprites grid."""
    from .. import entropy as E

    fac = E.factor_entropy(ds.SIZES).bits
    n = len(dataset)
    if isinstance(dataset, ds.NpzDSprites):
        source = f"{n} images of the real dSprites npz {dataset.path.name}"
    elif isinstance(dataset, ds.ProceduralDSprites):
        source = f"{n} images of procedural dSprites" + (" (the whole grid)" if n == ds.NUM_IMAGES else "")
    else:
        source = f"{n} images of {type(dataset).__name__}"
    if n > limit or not hasattr(dataset, "images"):
        return Budget(fac, None, None, n, None, source)
    emp, marg = E.image_entropies(dataset.images(np.arange(start, min(start + batch, n)))
                                  for start in range(0, n, batch))
    return Budget(fac, emp.entropy.bits, marg.total.bits, n, int(emp.distinct), source)
