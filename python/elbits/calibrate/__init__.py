"""Weight calibration: what beta a weighting applies, what a bit of rate is worth, and controllers.

- :mod:`.audit`: :func:`effective_beta`, :func:`audit` (the weights-vs-units table and verdict).
- :mod:`.exchange`: the theoretical exchange rate sum_i H(X_i) / H(X) and the empirical
  frontier of a beta sweep with its local slopes (= betas), bits per bit.
- :mod:`.controllers`: FixedBeta, CapacityAnnealing, GECO, TargetRate; pass one to
  ``ELBOLoss(controller=...)``.
"""

from __future__ import annotations

from ._observe import Observation, observe
from .audit import Audit, audit, effective_beta
from .controllers import GECO, CapacityAnnealing, Controller, FixedBeta, TargetRate
from .exchange import (
    ExchangeTheory,
    Frontier,
    empirical_frontier,
    exchange_rate,
    exchange_theory,
    local_slopes,
)

__all__ = [
    "GECO",
    "Audit",
    "CapacityAnnealing",
    "Controller",
    "ExchangeTheory",
    "FixedBeta",
    "Frontier",
    "Observation",
    "TargetRate",
    "audit",
    "effective_beta",
    "empirical_frontier",
    "exchange_rate",
    "exchange_theory",
    "local_slopes",
    "observe",
]
