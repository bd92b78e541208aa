"""Likelihoods computed with PyTorch ops beside the fused kernels of :mod:`elbits.ops`.

- :mod:`.probs`: Bernoulli from probabilities (``elbo_terms(..., input="probs")``), exactly
  ``F.binary_cross_entropy``, with a warning where its log clamp changes the loss.
- :mod:`.continuous`: ``"gaussian"`` and ``"laplace"`` decoders, the density NLL and, for 8-bit
  data, the discretized code length with the same parameters.
- :mod:`.kl`: the fused Gaussian KL kernel alone, which all of them use.
"""

from .continuous import continuous_terms
from .kl import gaussian_kl
from .probs import SaturationWarning, bernoulli_probs_terms

__all__ = ["SaturationWarning", "bernoulli_probs_terms", "continuous_terms", "gaussian_kl"]
