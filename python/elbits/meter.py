"""RateDistortionMeter: what a VAE spends (rate R = KL) and what it loses (distortion D = recon), per sample.

Accumulates :class:`~elbits.terms.ELBOTerms` over batches as float64 sums, reports per-sample means in
nats, bits and bits/dim, and compares R with an entropy budget H: any encoder/decoder with distortion D
(a code length for X given z) needs R >= H - D, so ``bound_slack_bits = R - (H - D)`` should be >= 0
(up to estimation noise when H is the data's true entropy).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
import torch.distributed as dist

from .terms import ELBOTerms
from .units import BITS_PER_NAT, Quantity, bits_per_dim, nats_to_bits


class RateDistortionMeter:
    """Running rate and distortion over batches of :class:`ELBOTerms`, in nats per sample.

    - ``budget``: the data's entropy H (a :class:`Quantity`, or nats as a float), e.g. 19.49 bits for
      dSprites; enables ``budget_*`` and ``bound_*`` scalars.
    - ``active_threshold``: a latent dimension is active when its mean KL exceeds this, nats (0.01).

    Under an initialised ``torch.distributed`` process group, :meth:`compute`/:meth:`scalars` all-reduce the
    sums first, so every process reports the global figures (call them on every rank).
    """

    def __init__(
        self,
        budget: Union[Quantity, float, None] = None,
        active_threshold: float = 0.01,
        distributed: bool = True,
    ) -> None:
        self.budget_nats: Optional[float] = (
            None if budget is None else (budget.nats if isinstance(budget, Quantity) else float(budget))
        )
        self.active_threshold = float(active_threshold)
        self.distributed = distributed
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen."""
        self.count = 0
        self.dims = 0
        self.recon_sum = 0.0
        self.recon_sq_sum = 0.0
        self.kl_sum: Optional[torch.Tensor] = None  # [Z] float64, nats summed over samples

    @torch.no_grad()
    def update(self, terms: ELBOTerms) -> None:
        """Add a batch (``recon`` ``[B]`` and ``kl`` ``[B, Z]`` in nats; gradients are ignored)."""
        recon = terms.recon.detach().to(torch.float64).cpu()
        kl = terms.kl.detach().to(torch.float64).cpu()
        if kl.dim() != 2 or recon.shape != kl.shape[:1]:
            raise ValueError(
                f"expected recon [B] and kl [B, Z], got {tuple(recon.shape)} and {tuple(kl.shape)}"
            )
        if self.dims and terms.dims != self.dims:
            raise ValueError(f"dims changed from {self.dims} to {terms.dims} between batches")
        if self.kl_sum is not None and kl.shape[1] != self.kl_sum.numel():
            raise ValueError(f"latent size changed from {self.kl_sum.numel()} to {kl.shape[1]}")
        self.dims = int(terms.dims)
        self.count += int(recon.numel())
        self.recon_sum += float(recon.sum())
        self.recon_sq_sum += float((recon * recon).sum())
        ks = kl.sum(0)
        self.kl_sum = ks if self.kl_sum is None else self.kl_sum + ks

    # -- global sums ---------------------------------------------------------------------------------
    def _global(self, reduce: bool = True) -> tuple[int, int, float, float, torch.Tensor]:
        kl = self.kl_sum if self.kl_sum is not None else torch.zeros(0, dtype=torch.float64)
        if not (reduce and self.distributed and dist.is_available() and dist.is_initialized()):
            return self.count, self.dims, self.recon_sum, self.recon_sq_sum, kl
        # Latent size may be unknown on a rank that saw no batch: agree on it first.
        z = torch.tensor([kl.numel(), self.dims], dtype=torch.float64)
        dist.all_reduce(z, op=dist.ReduceOp.MAX)
        zn, dims = int(z[0]), int(z[1])
        local_kl = kl if kl.numel() == zn else torch.zeros(zn, dtype=torch.float64)
        buf = torch.cat(
            [torch.tensor([self.count, self.recon_sum, self.recon_sq_sum], dtype=torch.float64), local_kl]
        )
        if dist.get_backend() == "nccl" and torch.cuda.is_available():
            dev = torch.device("cuda", torch.cuda.current_device())
            buf = buf.to(dev)
            dist.all_reduce(buf)
            buf = buf.cpu()
        else:
            dist.all_reduce(buf)
        return int(buf[0]), dims, float(buf[1]), float(buf[2]), buf[3:].clone()

    # -- per-sample figures --------------------------------------------------------------------------
    def compute(self, reduce: bool = True) -> dict[str, Any]:
        """Per-sample figures (global under DDP unless ``reduce=False``): nats, plus ``kl_per_dim_nats``
        ``[Z]``."""
        n, dims, rs, rsq, kl = self._global(reduce)
        if n == 0:
            raise RuntimeError("RateDistortionMeter has seen no samples")
        kl_dim = kl / n
        d = rs / n
        r = float(kl_dim.sum())
        var = max(rsq / n - d * d, 0.0)
        return {
            "samples": n,
            "dims": dims,
            "rate_nats": r,
            "distortion_nats": d,
            "distortion_std_nats": var**0.5,
            "kl_per_dim_nats": kl_dim,
        }

    def scalars(self, reduce: bool = True) -> dict[str, float]:
        """Flat dict of floats with unit-bearing names (``rate_bits``, ``distortion_bits_per_dim``, ...), and
        ``dims`` (observed dimensions per sample) and ``z_dim`` (latent dimensions)."""
        c = self.compute(reduce)
        r, d, dims = c["rate_nats"], c["distortion_nats"], c["dims"]
        kl_dim: torch.Tensor = c["kl_per_dim_nats"]
        out: dict[str, float] = {
            "samples": float(c["samples"]),
            "dims": float(dims),
            "z_dim": float(kl_dim.numel()),
            "rate_nats": r,
            "rate_bits": nats_to_bits(r),
            "rate_bits_per_dim": bits_per_dim(r, dims),
            "distortion_nats": d,
            "distortion_bits": nats_to_bits(d),
            "distortion_bits_per_dim": bits_per_dim(d, dims),
            "distortion_std_bits": nats_to_bits(c["distortion_std_nats"]),
            "nelbo_nats": r + d,
            "nelbo_bits": nats_to_bits(r + d),
            "nelbo_bits_per_dim": bits_per_dim(r + d, dims),
            "active_units": float(int((kl_dim > self.active_threshold).sum())),
            "active_threshold_nats": self.active_threshold,
        }
        for i, v in enumerate(kl_dim.tolist()):
            out[f"kl_{i}_bits"] = nats_to_bits(v)
        if self.budget_nats is not None:
            h = self.budget_nats
            out.update(
                {
                    "budget_nats": h,
                    "budget_bits": nats_to_bits(h),
                    "rate_over_budget": r / h if h > 0 else float("nan"),
                    # H - D <= R: the rate any decoder with this distortion needs at least.
                    "bound_nats": h - d,
                    "bound_bits": nats_to_bits(h - d),
                    "bound_slack_nats": r - (h - d),
                    "bound_slack_bits": nats_to_bits(r - (h - d)),
                }
            )
        return out

    # -- convenience properties (global under DDP) ---------------------------------------------------
    @property
    def rate(self) -> Quantity:
        """Mean KL per sample."""
        return Quantity(self.compute()["rate_nats"], "nats", "sample")

    @property
    def distortion(self) -> Quantity:
        """Mean reconstruction NLL per sample."""
        return Quantity(self.compute()["distortion_nats"], "nats", "sample")

    @property
    def rate_bits(self) -> float:
        return self.compute()["rate_nats"] * BITS_PER_NAT

    @property
    def distortion_bits(self) -> float:
        return self.compute()["distortion_nats"] * BITS_PER_NAT

    @property
    def kl_per_dim_bits(self) -> torch.Tensor:
        """``[Z]`` mean KL per latent dimension, bits per sample."""
        return self.compute()["kl_per_dim_nats"] * BITS_PER_NAT

    @property
    def active_units(self) -> int:
        return int((self.compute()["kl_per_dim_nats"] > self.active_threshold).sum())

    # -- checkpointing -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Local (this process's) sums; restore with :meth:`load_state_dict`."""
        return {
            "count": self.count,
            "dims": self.dims,
            "recon_sum": self.recon_sum,
            "recon_sq_sum": self.recon_sq_sum,
            "kl_sum": None if self.kl_sum is None else self.kl_sum.clone(),
            "budget_nats": self.budget_nats,
            "active_threshold": self.active_threshold,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.dims = int(state["dims"])
        self.recon_sum = float(state["recon_sum"])
        self.recon_sq_sum = float(state.get("recon_sq_sum", 0.0))
        kl = state["kl_sum"]
        self.kl_sum = None if kl is None else torch.as_tensor(kl, dtype=torch.float64).clone()
        self.budget_nats = state.get("budget_nats", self.budget_nats)
        self.active_threshold = float(state.get("active_threshold", self.active_threshold))

    def __repr__(self) -> str:
        if self.count == 0:
            return "RateDistortionMeter(empty)"
        s = self.scalars(reduce=False)  # a repr must never block on a collective
        return (
            f"RateDistortionMeter(local n={int(s['samples'])}, R={s['rate_bits']:.3f} bits, "
            f"D={s['distortion_bits']:.3f} bits, active={int(s['active_units'])})"
        )
