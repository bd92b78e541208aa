"""ELBOTerms: the two terms of a VAE's loss, per sample, in nats."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .units import BITS_PER_NAT


class ELBOTerms(NamedTuple):
    """Reconstruction and KL of one batch, in nats per sample.

    - ``recon``: ``[B]`` negative log-likelihood of each sample, summed over all of
      its observed dimensions (pixels x channels), in nats: the distortion D.
    - ``kl``: ``[B, Z]`` KL(q(z|x) || N(0, I)) per latent dimension, in nats.
    - ``dims``: observed dimensions per sample (for bits/dim).

    The negative ELBO of sample b is ``recon[b] + kl_total[b]`` nats.
    """

    recon: torch.Tensor
    kl: torch.Tensor
    dims: int

    @property
    def kl_total(self) -> torch.Tensor:
        """``[B]`` KL summed over latent dimensions, nats per sample: the rate R."""
        return self.kl.sum(dim=1)

    @property
    def nelbo(self) -> torch.Tensor:
        """``[B]`` negative ELBO (recon + KL), nats per sample."""
        return self.recon + self.kl_total

    @property
    def recon_bits(self) -> torch.Tensor:
        """``[B]`` reconstruction, bits per sample."""
        return self.recon * BITS_PER_NAT

    @property
    def kl_bits(self) -> torch.Tensor:
        """``[B, Z]`` KL per latent dimension, bits."""
        return self.kl * BITS_PER_NAT

    @property
    def kl_total_bits(self) -> torch.Tensor:
        """``[B]`` total KL, bits per sample."""
        return self.kl_total * BITS_PER_NAT

    @property
    def nelbo_bits(self) -> torch.Tensor:
        """``[B]`` negative ELBO, bits per sample."""
        return self.nelbo * BITS_PER_NAT

    @property
    def recon_bits_per_dim(self) -> torch.Tensor:
        """``[B]`` reconstruction, bits per observed dimension."""
        return self.recon * (BITS_PER_NAT / self.dims)

    @property
    def nelbo_bits_per_dim(self) -> torch.Tensor:
        """``[B]`` negative ELBO, bits per observed dimension (the figure papers report)."""
        return self.nelbo * (BITS_PER_NAT / self.dims)

    def detach(self) -> ELBOTerms:
        """The same terms cut from the autograd graph (for logging and meters)."""
        return ELBOTerms(self.recon.detach(), self.kl.detach(), self.dims)
