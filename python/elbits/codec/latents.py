"""Latents for bits-back coding: each latent's prior N(0, 1) cut into 2^P buckets of equal mass.

Each latent dimension d's value is coded as a bucket index k in 0..2^P_d - 1. Under the prior every bucket
has mass 2^-P_d, so pushing k costs exactly P_d bits. The posterior N(mu, sigma^2) is discretised over the
same buckets and restricted to a window of ``window`` sigmas around mu: the coder gives every symbol of a
table at least its smallest probability, so a table over all 2^P buckets would leak that floor's mass on
thousands of buckets the posterior never reaches. z is decoded at the bucket's median under the prior.

The precision P_d matters where buckets are wide next to the posterior (far in the prior's tail, or a
very sharp posterior): there the discretised posterior sits in one or two buckets and its latent costs
less than the continuous KL (the discrete KL saturates at P_d bits while the continuous one grows as
-log sigma), and z at a bucket's median is not a posterior sample. :func:`choose_bits` picks, per
dimension, the smallest P_d that gives every posterior of the set at least ``per_sigma`` buckets per
sigma; the file records the P_d.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Union

import numpy as np
import torch

from ..errors import InputError

MIN_BITS, MAX_BITS = 2, 20
#: the least P that :func:`choose_bits` picks: 2^8 buckets give even a collapsed latent (sigma 1) some 87
#: buckets per sigma, in a 256-entry table
AUTO_MIN_BITS = 8
#: buckets per posterior sigma that :func:`choose_bits` asks for: the discrete KL then falls short of the
#: continuous one by about 0.06 / r^2 bits per dimension (0.015 at r = 2; measured in docs/codec.md)
BUCKETS_PER_SIGMA = 2.0

#: float64 elements of a posterior table computed at once (2 MiB, within a core's cache)
_BLOCK_ELEMENTS = 1 << 18

#: the multipliers of :meth:`Buckets.scramble`, cut to P bits (and made odd): constants of the file format
_MIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9)


def check_bits(bits: object) -> int:
    """``bits`` as a precision P in ``MIN_BITS..MAX_BITS``; :class:`InputError` otherwise."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise InputError(f"latent_bits must be 'auto' or an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
    return int(bits)


def check_window(window: object) -> float:
    """``window`` as a number of sigmas in [1, 40], rounded to float32 as the file stores it;
    :class:`InputError` otherwise."""
    if not (isinstance(window, (int, float)) and np.isfinite(window) and 1.0 <= window <= 40.0):
        raise InputError(f"latent_window must be a number of sigmas in [1, 40], got {window!r}")
    return float(np.float32(window))


def choose_bits(mu: torch.Tensor, logvar: torch.Tensor, per_sigma: float = BUCKETS_PER_SIGMA) -> np.ndarray:
    """Per latent dimension, the smallest P in ``AUTO_MIN_BITS..MAX_BITS`` whose buckets give every posterior
    N(mu, exp(logvar)) of the set ``[N, Z]`` at least ``per_sigma`` buckets per sigma: 2^P times the
    prior mass within one sigma of mu is at least 2 ``per_sigma``. int64 ``[Z]``."""
    m = mu.detach().to(torch.float64).abs()
    s = torch.exp(0.5 * logvar.detach().to(torch.float64))
    # the prior's mass on [|mu| - s, |mu| + s], from the lower tail so a far mean keeps its digits
    mass = torch.special.ndtr(s - m) - torch.special.ndtr(-m - s)
    smallest = mass.min(0).values.clamp(min=2.0**-64).numpy()
    bits = np.ceil(np.log2(2.0 * per_sigma / smallest))
    return np.clip(bits, AUTO_MIN_BITS, MAX_BITS).astype(np.int64)


@functools.cache
def _edges(bits: int) -> torch.Tensor:
    """The 2^bits + 1 bucket edges of N(0, 1), -inf to +inf (float64); 8 MiB at the largest P."""
    return torch.special.ndtri(torch.arange((1 << bits) + 1, dtype=torch.float64) / (1 << bits))


class Buckets:
    """The 2^``bits[d]`` equal-mass buckets of N(0, 1) for each latent dimension d, and the posterior
    tables over them (float64). ``bits``: one precision per dimension, or one for all (with ``z_dim``)."""

    def __init__(self, bits: Union[int, Sequence[int], np.ndarray], window: float, z_dim: int = 0) -> None:
        if np.ndim(bits) == 0:
            bits = [check_bits(bits)] * z_dim
        self.bits = np.array([check_bits(b) for b in np.asarray(bits).tolist()], dtype=np.int64)
        if self.bits.size == 0:
            raise InputError("the model has no latent dimensions")
        self.window = check_window(window)
        self.size = np.left_shift(1, self.bits)
        # every distinct precision's edges, end to end: a row's edge j is edges[offset + j]
        distinct = sorted(set(self.bits.tolist()))
        at = np.cumsum([0] + [(1 << b) + 1 for b in distinct])
        self._edges = torch.cat([_edges(b) for b in distinct])
        self._offset = torch.as_tensor(at[np.searchsorted(distinct, self.bits)], dtype=torch.int64)
        self._size = torch.as_tensor(self.size, dtype=torch.float64)
        self._mask = self.size - 1
        self._shift = (self.bits + 1) // 2
        self._mul = [np.array([(c & int(m)) | 1 for m in self._mask], dtype=np.int64) for c in _MIX]
        self._inv = [np.array([pow(int(a), -1, int(n)) for a, n in zip(mul, self.size)]) for mul in self._mul]

    def scramble(self, index: np.ndarray) -> np.ndarray:
        """Bucket indices ``index`` ``[B, Z]`` through a fixed bijection of each latent's 0..2^P - 1, as
        they are pushed under the prior (which still costs exactly P bits each); :meth:`unscramble` inverts
        it. Later posteriors are decoded from these bits in part, and raw indices are far from random
        where the aggregate posterior is not the prior (their high bits follow mu): that put later
        posterior samples at biased quantiles, +0.4 % on the checkpoint's rate over four sets of 1,000
        images. Xor-shifts by half the width and odd multiplications modulo 2^P make every bit of the
        result depend on every bit of the index."""
        x = np.asarray(index, dtype=np.int64).copy()
        for mul in self._mul:
            x ^= x >> self._shift
            x = (x * mul) & self._mask
        x ^= x >> self._shift
        return x

    def unscramble(self, code: np.ndarray) -> np.ndarray:
        """The bucket indices ``[B, Z]`` that :meth:`scramble` maps to ``code``: an xor-shift by at least
        half the width is its own inverse, a multiplication's inverse is by the multiplier's inverse."""
        x = np.asarray(code, dtype=np.int64).copy()
        for inv in reversed(self._inv):
            x ^= x >> self._shift
            x = (x * inv) & self._mask
        x ^= x >> self._shift
        return x

    def pop_bits(self, mu: torch.Tensor, logvar: torch.Tensor) -> np.ndarray:
        """About how many bits each posterior of ``mu``, ``logvar`` ``[N, Z]`` takes off the stack, ``[N]``
        float64: per latent the entropy of a Gaussian over buckets, log2(sqrt(2 pi e) sigma / width), within
        0..P. For sizing steps only; nothing decoded depends on it."""
        m = mu.detach().to(torch.float64).abs()
        s = torch.exp(0.5 * logvar.detach().to(torch.float64))
        per_sigma = 0.5 * self._size * (torch.special.ndtr(s - m) - torch.special.ndtr(-m - s))
        h = torch.log2(per_sigma.clamp(min=1e-300)) + 0.5 * np.log2(2 * np.pi * np.e)
        return torch.minimum(h.clamp(min=0.0), torch.as_tensor(self.bits, dtype=torch.float64)).sum(1).numpy()

    def z(self, index: np.ndarray) -> torch.Tensor:
        """The latent values (float32) of bucket indices ``index`` ``[B, Z]``: each bucket's median."""
        k = torch.from_numpy(np.asarray(index, dtype=np.int64)).to(torch.float64)
        return torch.special.ndtri((k + 0.5) / self._size).to(torch.float32)

    def posterior(
        self, mu: torch.Tensor, logvar: torch.Tensor
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """The discretised posteriors of a batch ``mu``, ``logvar`` ``[B, Z]``, as groups ``(rows, start,
        table, total)`` of one window width across the batch: for the flat latents ``rows`` (int64, image *
        Z + dim, ascending), the first bucket of each table ``start`` (int64), the masses ``table``
        ``[len(rows), width]`` (float64) of buckets ``start + j`` within the window (zero past it: the coder
        still gives those buckets its smallest probability) and each row's mass within the window
        ``total`` (float64, the table's row sums up to rounding). One coder call codes a group: a call
        takes one table width, and grouping keeps a collapsed dimension's wide window from widening a
        narrow one's.

        The masses of a whole batch are computed together, so encoder and decoder, which see the same
        batches, compute them with the same instructions: bit-identical tables."""
        m = mu.detach().to(torch.float64)
        s = torch.exp(0.5 * logvar.detach().to(torch.float64))
        if not (torch.isfinite(m).all() and torch.isfinite(s).all() and (s > 0).all()):
            raise InputError("the encoder returned a non-finite posterior (mu or logvar NaN/Inf, or sigma 0)")
        batch, z_dim = m.shape
        if z_dim != self.bits.size:
            raise InputError(f"the model has {z_dim} latents, the file {self.bits.size}")
        m, s = m.reshape(-1), s.reshape(-1)
        size = self._size.repeat(batch)
        first = self._bucket(m - self.window * s, size)
        last = self._bucket(m + self.window * s, size)
        need = (last - first + 1).numpy()
        # at least two columns: the coder has no one-symbol distribution
        width_class = np.clip(np.ceil(np.log2(need)).astype(np.int64), 1, np.tile(self.bits, batch))
        offset = self._offset.repeat(batch)
        # Phi((e - m) / s) = erfc((m - e) / (s sqrt 2)) / 2, and erfc is three times faster than ndtr
        scale = -1.0 / (s * np.sqrt(2.0))
        shift = -m * scale
        groups = []
        for w in np.unique(width_class):
            rows = torch.from_numpy(np.flatnonzero(width_class == w))
            width = 1 << int(w)
            # every column is a real bucket: a window that would pass the last one starts lower
            start = torch.minimum(first[rows], size[rows].long() - width)
            span = last[rows] - start
            end = torch.clamp(span + 1, max=width)[:, None]
            total = torch.empty(len(rows), dtype=torch.float64)
            shift_r, scale_r = shift[rows, None], scale[rows, None]
            edges = self._edges.unfold(0, width + 1, 1)  # row j: edges j .. j + width, a strided view
            at = offset[rows] + start
            mass = torch.empty((len(rows), width), dtype=torch.float64)
            columns = torch.arange(width)
            # in blocks of rows that stay in cache: several passes over one block cost less than one
            # pass over the whole group in memory
            block = max(1, _BLOCK_ELEMENTS // (width + 1))
            for lo in range(0, len(rows), block):
                hi = min(lo + block, len(rows))
                tail = edges[at[lo:hi]].mul_(scale_r[lo:hi]).add_(shift_r[lo:hi])
                torch.special.erfc(tail, out=tail)
                # Plain differences of the CDF: a mass near 1 - cdf loses relative digits, but only
                # below 1e-16 absolute, far under the coder's smallest probability (2^-24). The edges
                # ascend, so every mass is >= 0.
                out = mass[lo:hi]
                torch.sub(tail[:, 1:], tail[:, :-1], out=out)
                out.mul_(0.5).masked_fill_(columns > span[lo:hi, None], 0.0)
                # the window's mass telescopes to its two end edges: no pass over the table for it
                torch.sub(tail.gather(1, end[lo:hi])[:, 0], tail[:, 0], out=total[lo:hi]).mul_(0.5)
            groups.append((rows.numpy(), start.numpy(), mass.numpy(), total.numpy()))
        return groups

    @staticmethod
    def _bucket(v: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        return torch.minimum((torch.special.ndtr(v) * size).floor(), size - 1).clamp(min=0).long()
