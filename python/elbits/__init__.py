"""elbits: a VAE's two loss terms in honest units.

Reconstruction cross-entropy and Gaussian KL, fused in one pass by a compiled
core, returned per sample in nats with conversions to bits and bits/dim.
"""

from __future__ import annotations

from . import analysis, calibrate, data, entropy, evaluate, models, reference, report, train, units
from .api import elbo_terms
from .logprobs import likelihood_logprobs
from .loss import ELBOLoss
from .meter import RateDistortionMeter
from .ops.buffers import release_buffers
from .ops.device_flags import check_device_errors
from .terms import ELBOTerms
from .units import Quantity

__version__ = "0.1.0"  # the one version: pyproject.toml reads it (scikit-build metadata.version)

__all__ = [
    "ELBOLoss",
    "ELBOTerms",
    "Quantity",
    "RateDistortionMeter",
    "analysis",
    "calibrate",
    "check_device_errors",
    "data",
    "elbo_terms",
    "entropy",
    "evaluate",
    "likelihood_logprobs",
    "models",
    "reference",
    "release_buffers",
    "report",
    "train",
    "units",
    "__version__",
]
