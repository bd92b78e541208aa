"""Latents for bits-back coding: the prior N(0, 1) cut into 2^P buckets of equal mass.

Each latent dimension's value is coded as a bucket index k in 0..2^P - 1. Under the prior every bucket
has mass 2^-P, so pushing k costs exactly P bits. The posterior N(mu, sigma^2) is discretised over the
same buckets and restricted to a window of ``window`` sigmas around mu: the coder gives every symbol of a
table at least its smallest probability, so a table over all 2^P buckets would leak that floor's mass on
thousands of buckets the posterior never reaches. z is decoded at the bucket's median under the prior.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError

MIN_BITS, MAX_BITS = 2, 20


class Buckets:
    """The 2^``bits`` equal-mass buckets of N(0, 1) and the posterior tables over them (float64)."""

    def __init__(self, bits: int, window: float) -> None:
        if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
            raise InputError(f"latent_bits must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
        if not (isinstance(window, (int, float)) and np.isfinite(window) and 1.0 <= window <= 40.0):
            raise InputError(f"latent_window must be a number of sigmas in [1, 40], got {window!r}")
        self.bits = bits
        self.window = float(window)
        self.size = 1 << bits
        q = torch.arange(self.size + 1, dtype=torch.float64) / self.size
        self.edges = torch.special.ndtri(q)  # -inf, ..., +inf
        self.centres = torch.special.ndtri((torch.arange(self.size, dtype=torch.float64) + 0.5) / self.size)

    def z(self, index: np.ndarray) -> torch.Tensor:
        """The latent values (float32) of bucket indices ``index`` ``[B, Z]``."""
        return self.centres[torch.from_numpy(np.asarray(index, dtype=np.int64))].to(torch.float32)

    def posterior(
        self, mu: torch.Tensor, logvar: torch.Tensor
    ) -> list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """The discretised posteriors of a batch ``mu``, ``logvar`` ``[B, Z]``: for each image a list of
        groups ``(dims, start, table)`` of similar window width — for the latent dimensions ``dims``
        (int64), the first bucket of each table ``start`` (int64) and the masses ``table``
        ``[len(dims), width]`` (float64) of buckets ``start + j`` within the window (zero past it: the coder
        still gives those buckets its smallest probability). A coder call takes one table width, so
        grouping keeps a collapsed dimension's wide window from widening a narrow one's.

        The masses of a whole batch are computed together, so encoder and decoder, which see the same
        batches, compute them with the same instructions: bit-identical tables."""
        m = mu.detach().to(torch.float64)
        s = torch.exp(0.5 * logvar.detach().to(torch.float64))
        if not (torch.isfinite(m).all() and torch.isfinite(s).all() and (s > 0).all()):
            raise InputError("the encoder returned a non-finite posterior (mu or logvar NaN/Inf, or sigma 0)")
        batch, z_dim = m.shape
        m, s = m.reshape(-1), s.reshape(-1)
        first = self._bucket(m - self.window * s)
        last = self._bucket(m + self.window * s)
        need = (last - first + 1).numpy()
        # at least two columns: the coder has no one-symbol distribution
        width_class = np.clip(np.ceil(np.log2(need)).astype(np.int64), 1, self.bits)
        per_image: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(batch)]
        for w in np.unique(width_class):
            rows = np.flatnonzero(width_class == w)
            width = 1 << int(w)
            # every column is a real bucket: a window that would pass the last one starts lower
            start = torch.clamp(first[rows], max=self.size - width)
            k = start[:, None] + torch.arange(width + 1)
            u = (self.edges[k] - m[rows, None]) / s[rows, None]
            tail = 0.5 * torch.erfc(u.abs() * _SQRT_HALF)  # the normal's mass beyond |u|, one side
            a, b, ta, tb = u[:, :-1], u[:, 1:], tail[:, :-1], tail[:, 1:]
            # masses from tails only, so that buckets far from the mean keep their digits
            mass = torch.where(b <= 0, tb - ta, torch.where(a >= 0, ta - tb, 1.0 - ta - tb))
            inside = k[:, :-1] <= torch.as_tensor(last.numpy()[rows])[:, None]
            table = torch.where(inside, torch.clamp(mass, min=0.0), 0.0).numpy()
            start_np = start.numpy()
            image, dim = np.divmod(rows, z_dim)  # rows ascend, so each image's rows are one run
            cuts = np.searchsorted(image, np.arange(batch + 1))
            for i in range(batch):
                lo, hi = cuts[i], cuts[i + 1]
                if hi > lo:
                    per_image[i].append((dim[lo:hi], start_np[lo:hi], table[lo:hi]))
        return per_image

    def _bucket(self, v: torch.Tensor) -> torch.Tensor:
        return torch.clamp((torch.special.ndtr(v) * self.size).floor().long(), 0, self.size - 1)


_SQRT_HALF = 0.7071067811865476
