"""What the data needs, in bits: factor, joint, DAG and plug-in entropies, de-duplication, pixel marginals.

Every function returns values carrying their unit (:class:`~elbits.units.Quantity`, nats and bits).
Entropies of images are per image (``per="image"``); of factors, per sample.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import torch

from ..units import Quantity, nats_to_bits

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float]]
Images = Union[np.ndarray, torch.Tensor, Iterable[Union[np.ndarray, torch.Tensor]]]

MILLER_MADOW_CAVEAT = (
    "plug-in entropy is biased low; Miller-Madow adds (m - 1) / (2N) nats (m = observed distinct values), "
    "which removes only the first-order bias: with N not much larger than the support, both still "
    "underestimate H and no unbiased estimator exists"
)


def _nats(value: float, per: str) -> Quantity:
    return Quantity(float(value), "nats", per)


def _h(p: np.ndarray) -> float:
    """Shannon entropy in nats of a probability array (zeros contribute nothing)."""
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _check_prob(p: np.ndarray, what: str, axis=None, atol: float = 1e-6) -> np.ndarray:
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise ValueError(f"{what} must hold finite non-negative probabilities")
    s = p.sum(axis=axis)
    if not np.allclose(s, 1.0, atol=atol):
        raise ValueError(f"{what} must sum to 1 (got sums in [{np.min(s):.6g}, {np.max(s):.6g}])")
    return p


def factor_entropy(factors: Sequence[Union[int, ArrayLike]]) -> Quantity:
    """Entropy of independent factors, nats per sample.

    ``factors`` is either sizes (ints: each factor uniform over that many values, H = sum log size) or
    marginals (probability vectors, H = sum H(p_i)). dSprites ``(1, 3, 6, 40, 32, 32)`` -> 19.49 bits.
    """
    total = 0.0
    for i, f in enumerate(factors):
        if isinstance(f, (int, np.integer)):
            if f < 1:
                raise ValueError(f"factor {i} has size {f}; sizes must be >= 1")
            total += math.log(int(f))
        else:
            p = _check_prob(np.asarray(f, dtype=np.float64).ravel(), f"factor {i}'s marginal")
            total += _h(p)
    return _nats(total, "sample")


def joint_entropy(table: ArrayLike) -> Quantity:
    """Entropy of a joint probability table (any number of axes, summing to 1), nats per sample."""
    p = _check_prob(np.asarray(table, dtype=np.float64), "joint table")
    return _nats(_h(p.ravel()), "sample")


@dataclass(frozen=True)
class CPT:
    """Conditional probability table P(F | parents): array ``[*parent_sizes, size]``, rows summing to 1."""

    table: np.ndarray
    parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class DagEntropy:
    """H of a factor DAG: ``total`` = sum of ``terms[name]`` = H(F | parents(F)), nats per sample."""

    total: Quantity
    terms: dict[str, Quantity] = field(default_factory=dict)


def _topological(cpts: Mapping[str, CPT]) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, stack: tuple[str, ...]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise ValueError(f"factor graph has a cycle: {' -> '.join(stack + (n,))}")
        if n not in cpts:
            raise ValueError(f"parent {n!r} has no table")
        state[n] = 1
        for p in cpts[n].parents:
            visit(p, stack + (n,))
        state[n] = 2
        order.append(n)

    for n in cpts:
        visit(n, ())
    return order


def dag_entropy(cpts: Mapping[str, Union[CPT, tuple[np.ndarray, Sequence[str]], np.ndarray]]) -> DagEntropy:
    """H = sum_i H(F_i | parents(F_i)) for factors given as a DAG of conditional probability tables.

    ``cpts`` maps a factor name to :class:`CPT` (or ``(table, parents)``, or a root's marginal). Tables are
    validated (shapes match the parents' sizes, every conditional sums to 1) and the graph must be acyclic.
    Exact: builds the joint (fine for the small tables factor models have).
    """
    norm: dict[str, CPT] = {}
    for name, c in cpts.items():
        if isinstance(c, CPT):
            norm[name] = CPT(np.asarray(c.table, np.float64), tuple(c.parents))
        elif isinstance(c, tuple):
            norm[name] = CPT(np.asarray(c[0], np.float64), tuple(c[1]))
        else:
            norm[name] = CPT(np.asarray(c, np.float64), ())
    order = _topological(norm)
    sizes = {n: norm[n].table.shape[-1] for n in order}
    for n in order:
        c = norm[n]
        want = tuple(sizes[p] for p in c.parents) + (sizes[n],)
        if c.table.shape != want:
            raise ValueError(
                f"table of {n!r} has shape {c.table.shape}, expected {want} (parents {c.parents})"
            )
        _check_prob(c.table, f"P({n} | {', '.join(c.parents) or '-'})", axis=-1)
    axis = {n: i for i, n in enumerate(order)}
    joint = np.ones([1] * len(order))
    for n in order:
        c = norm[n]
        # Move the table's axes to their place in the joint (topological order) by broadcasting.
        src = [axis[p] for p in c.parents] + [axis[n]]
        perm = np.argsort(src)
        t = c.table.transpose(perm)
        shape = [1] * len(order)
        for a in sorted(src):
            shape[a] = sizes[order[a]]
        joint = joint * t.reshape(shape)
    terms: dict[str, Quantity] = {}
    for n in order:
        keep = sorted(axis[p] for p in norm[n].parents)
        fam = sorted(keep + [axis[n]])
        h_fam = _h(joint.sum(axis=tuple(a for a in range(len(order)) if a not in fam)).ravel())
        h_pa = (
            _h(joint.sum(axis=tuple(a for a in range(len(order)) if a not in keep)).ravel()) if keep else 0.0
        )
        terms[n] = _nats(h_fam - h_pa, "sample")
    return DagEntropy(_nats(sum(t.nats for t in terms.values()), "sample"), terms)


@dataclass(frozen=True)
class PluginEstimate:
    """Entropy estimated from samples: plug-in and Miller-Madow corrected, nats per sample."""

    plugin: Quantity
    miller_madow: Quantity
    samples: int
    distinct: int
    caveat: str = MILLER_MADOW_CAVEAT


def plugin_entropy(samples: ArrayLike) -> PluginEstimate:
    """Plug-in and Miller-Madow entropy of samples ``[N]`` (values) or ``[N, k]`` (rows of factors).

    See :data:`MILLER_MADOW_CAVEAT`: both are biased low when N is not much larger than the support.
    """
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    n = len(x)
    if n == 0:
        raise ValueError("need at least one sample")
    _, counts = np.unique(x, axis=0, return_counts=True)
    h = _h(counts / n)
    m = len(counts)
    return PluginEstimate(_nats(h, "sample"), _nats(h + (m - 1) / (2 * n), "sample"), n, m)


@dataclass(frozen=True)
class EmpiricalEntropy:
    """Exact entropy of a finite image distribution (each listed image equally likely), nats per image."""

    entropy: Quantity
    distinct: int
    total: int

    @property
    def log2_n(self) -> Quantity:
        """log N for the N listed images: the entropy if none repeated."""
        return _nats(math.log(self.total), "image")


def _batches(images: Images) -> Iterable[np.ndarray]:
    if isinstance(images, (np.ndarray, torch.Tensor)):
        images = [images]
    for b in images:
        arr = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
        yield np.ascontiguousarray(arr.reshape(len(arr), -1))


def _merge(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inv.ravel(), weights=counts, minlength=len(uniq)).astype(np.int64)


class ImageCounter:
    """Streaming de-duplication of images by a 128-bit BLAKE2b hash of their bytes (16 bytes per distinct
    image)."""

    def __init__(self, compact_every: int = 1 << 20) -> None:
        self.keys = np.zeros(0, dtype="V16")
        self.counts = np.zeros(0, dtype=np.int64)
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self.total = 0
        self.compact_every = compact_every

    def update(self, batch: Union[np.ndarray, torch.Tensor]) -> None:
        """Count a batch ``[b, ...]`` of images (any dtype; equal images are equal bytes)."""
        for b in _batches(batch):
            digests = np.frombuffer(
                b"".join(hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in b), dtype="V16"
            )
            self._pending.append(digests)
            self._n_pending += len(digests)
            self.total += len(digests)
        if self._n_pending >= self.compact_every:
            self._compact()

    def _compact(self) -> None:
        if self._pending:
            self.keys, self.counts = _merge(
                np.concatenate([self.keys, *self._pending]),
                np.concatenate([self.counts, np.ones(self._n_pending, np.int64)]),
            )
            self._pending, self._n_pending = [], 0

    def result(self) -> EmpiricalEntropy:
        self._compact()
        if self.total == 0:
            raise ValueError("no images")
        c = self.counts.astype(np.float64)
        h = math.log(self.total) - float((c * np.log(c)).sum()) / self.total
        return EmpiricalEntropy(_nats(h, "image"), int(len(c)), self.total)


def empirical_entropy(images: Images, compact_every: int = 1 << 20) -> EmpiricalEntropy:
    """Exact H(X) of the uniform distribution over the given images, by de-duplication.

    Streams over ``images`` (an array ``[N, ...]`` or an iterable of batches), hashing each image's bytes
    (BLAKE2b, 128 bits: collisions are negligible) and counting digests, so memory is 16 bytes per
    distinct image, never the images. H = log N - (1/N) sum_k c_k log c_k over the distinct images' counts.
    """
    counter = ImageCounter(compact_every)
    for b in _batches(images):
        counter.update(b)
    return counter.result()


@dataclass(frozen=True)
class MarginalPixelEntropy:
    """Sum over pixels of H(X_i) (nats per image) and the per-subpixel entropies in bits ``[D]``."""

    total: Quantity
    per_pixel_bits: np.ndarray
    levels: int


class PixelHistogram:
    """Streaming per-subpixel histograms ``[D, levels]`` for :func:`marginal_pixel_entropy`."""

    def __init__(self, levels: int = 0) -> None:
        self.levels = levels
        self.hist: Optional[np.ndarray] = None
        self.total = 0

    def update(self, batch: Union[np.ndarray, torch.Tensor]) -> None:
        for b in _batches(batch):
            b = b.astype(np.int64)
            if self.hist is None:
                if self.levels == 0:
                    self.levels = 2 if b.max(initial=0) <= 1 else 256
                self.hist = np.zeros(b.shape[1] * self.levels, np.int64)
            if b.min(initial=0) < 0 or b.max(initial=0) >= self.levels:
                raise ValueError(f"pixel values must lie in [0, {self.levels})")
            offs = np.arange(b.shape[1], dtype=np.int64) * self.levels
            self.hist += np.bincount((b + offs).ravel(), minlength=len(self.hist))
            self.total += len(b)

    def result(self) -> MarginalPixelEntropy:
        if self.hist is None or self.total == 0:
            raise ValueError("no images")
        p = self.hist.reshape(-1, self.levels) / self.total
        with np.errstate(divide="ignore", invalid="ignore"):
            per = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
        return MarginalPixelEntropy(_nats(per.sum(), "image"), nats_to_bits(per), self.levels)


def image_entropies(
    batches: Iterable[Union[np.ndarray, torch.Tensor]], levels: int = 2
) -> tuple[EmpiricalEntropy, MarginalPixelEntropy]:
    """H(X) (:class:`ImageCounter`) and sum_i H(X_i) (:class:`PixelHistogram` of ``levels``) of the images
    in ``batches``, in one streaming pass."""
    counter, hist = ImageCounter(), PixelHistogram(levels=levels)
    for b in batches:
        counter.update(b)
        hist.update(b)
    return counter.result(), hist.result()


def marginal_pixel_entropy(images: Images, levels: int = 0) -> MarginalPixelEntropy:
    """Sum_i H(X_i) over subpixels, nats per image: the distortion at rate 0 of a per-pixel decoder.

    ``levels`` is 2 (binary {0, 1}) or 256 (uint8); 0 picks 2 when every value is 0 or 1 in the first
    batch, else 256. Streams and keeps only per-pixel histograms ``[D, levels]``.
    """
    hist = PixelHistogram(levels)
    for b in _batches(images):
        hist.update(b)
    return hist.result()


def total_correlation(
    marginal: Union[MarginalPixelEntropy, Quantity], joint: Union[EmpiricalEntropy, Quantity]
):
    """Sum_i H(X_i) - H(X), nats per image: the dependence among pixels a per-pixel loss cannot see."""
    m = marginal.total if isinstance(marginal, MarginalPixelEntropy) else marginal
    j = joint.entropy if isinstance(joint, EmpiricalEntropy) else joint
    return _nats(m.nats - j.nats, "image")
