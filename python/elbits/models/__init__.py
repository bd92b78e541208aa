"""Models that produce (logits, mu, logvar) for :func:`elbits.elbo_terms`, and adapters for other libraries'
VAEs."""

from .adapters import DECODER_OUTPUTS, DisentanglingVAEAdapter, PythaeAdapter, VAEAdapter, adapt
from .burgess import BurgessVAE, load_disentangling_vae
from .colour import COLOUR_LIKELIHOODS, ColourVAE, colour_from_state_dict, colour_out_channels

__all__ = [
    "COLOUR_LIKELIHOODS",
    "DECODER_OUTPUTS",
    "BurgessVAE",
    "ColourVAE",
    "DisentanglingVAEAdapter",
    "PythaeAdapter",
    "VAEAdapter",
    "adapt",
    "colour_from_state_dict",
    "colour_out_channels",
    "load_disentangling_vae",
]
