"""ELBOLoss: a drop-in torch.nn.Module for the negative ELBO in nats per sample."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .api import LIKELIHOODS, elbo_terms
from .terms import ELBOTerms


class ELBOLoss(nn.Module):
    """``loss = crit(logits, target, mu, logvar)``: ``recon + beta * kl_total``, nats per sample.

    - ``likelihood``: see :func:`elbits.elbo_terms`.
    - ``beta``: weight of the KL in nats of reconstruction per nat of KL; both terms
      are per-sample sums, so beta = 1 is the ELBO whatever the image size.
    - ``reduction``: ``"mean"`` over the batch (nats per sample) or ``"sum"``
      (nats per batch).

    After each call ``crit.last`` holds the detached :class:`ELBOTerms` for logging.
    """

    def __init__(
        self,
        likelihood: str = "bernoulli",
        beta: float = 1.0,
        reduction: str = "mean",
        *,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got {likelihood!r}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        beta = float(beta)
        if not beta >= 0.0:
            raise ValueError(f"beta must be a finite number >= 0 (nats of reconstruction per nat of KL), got {beta}")
        self.likelihood = likelihood
        self.beta = beta
        self.reduction = reduction
        self.check_finite = check_finite
        self.last: Optional[ELBOTerms] = None

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        terms = elbo_terms(logits, target, mu, logvar, self.likelihood, check_finite=self.check_finite)
        self.last = terms.detach()
        per_sample = terms.recon + self.beta * terms.kl_total
        return per_sample.mean() if self.reduction == "mean" else per_sample.sum()

    def extra_repr(self) -> str:
        return f"likelihood={self.likelihood!r}, beta={self.beta}, reduction={self.reduction!r}"
