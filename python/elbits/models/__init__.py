"""Models that produce (logits, mu, logvar) for :func:`elbits.elbo_terms`."""

from .burgess import BurgessVAE, load_disentangling_vae

__all__ = ["BurgessVAE", "load_disentangling_vae"]
