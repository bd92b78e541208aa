"""Models that produce (logits, mu, logvar) for :func:`elbits.elbo_terms`, and adapters for other libraries'
VAEs."""

from .adapters import DECODER_OUTPUTS, DisentanglingVAEAdapter, PythaeAdapter, VAEAdapter, adapt
from .burgess import BurgessVAE, load_disentangling_vae

__all__ = [
    "DECODER_OUTPUTS",
    "BurgessVAE",
    "DisentanglingVAEAdapter",
    "PythaeAdapter",
    "VAEAdapter",
    "adapt",
    "load_disentangling_vae",
]
