"""Weight calibration: what beta a weighting applies, what a bit of rate is worth, and controllers.

- :mod:`.audit`: :func:`effective_beta`, :func:`audit` (the weights-vs-units table and verdict).
- :mod:`.weighting`: :class:`Weighting`, a loss's weights and reductions (capacity, KL parts included).
- :mod:`.presets`: the losses of pythae, disentangling-vae and PyTorch-VAE as Weightings.
- :mod:`.continuous`: MSE / L1 read as Gaussian / Laplace NLLs; maximum-likelihood scales.
- :mod:`.exchange`: the theoretical exchange rate sum_i H(X_i) / H(X) and the empirical
  frontier of a beta sweep with its local slopes (= betas), bits per bit.
- :mod:`.controllers`: FixedBeta, CapacityAnnealing, GECO, TargetRate; pass one to
  ``ELBOLoss(controller=...)``.
"""

from __future__ import annotations

from . import presets
from ._observe import Observation, observe
from .audit import Audit, audit, effective_beta
from .continuous import error_terms, ml_laplace_scale, ml_sigma
from .controllers import GECO, CapacityAnnealing, Controller, FixedBeta, TargetRate
from .exchange import (
    ExchangeTheory,
    Frontier,
    empirical_frontier,
    exchange_rate,
    exchange_theory,
    local_slopes,
)
from .weighting import Betas, Weighting

__all__ = [
    "GECO",
    "Audit",
    "Betas",
    "CapacityAnnealing",
    "Controller",
    "ExchangeTheory",
    "FixedBeta",
    "Frontier",
    "Observation",
    "TargetRate",
    "Weighting",
    "audit",
    "effective_beta",
    "empirical_frontier",
    "error_terms",
    "exchange_rate",
    "exchange_theory",
    "local_slopes",
    "ml_laplace_scale",
    "ml_sigma",
    "observe",
    "presets",
]
