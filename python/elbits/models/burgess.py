"""The Burgess et al. (2018) VAE for 64x64 binary images, loadable from disentangling-vae checkpoints."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Union

import torch
from torch import nn
from torch.nn import functional as F


class _Encoder(nn.Module):
    def __init__(self, z_dim: int, channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(32, 32, 4, stride=2, padding=1)
        self.conv_64 = nn.Conv2d(32, 32, 4, stride=2, padding=1)
        self.lin1 = nn.Linear(32 * 4 * 4, 256)
        self.lin2 = nn.Linear(256, 256)
        # Interleaved outputs, as in disentangling-vae: view [B, Z, 2] -> (mu, logvar).
        self.mu_logvar_gen = nn.Linear(256, 2 * z_dim)
        self.z_dim = z_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x
        for conv in (self.conv1, self.conv2, self.conv3, self.conv_64):
            h = F.relu(conv(h))
        h = F.relu(self.lin1(h.flatten(1)))
        h = F.relu(self.lin2(h))
        ml = self.mu_logvar_gen(h).view(-1, self.z_dim, 2)
        return ml[..., 0], ml[..., 1]


class _Decoder(nn.Module):
    def __init__(self, z_dim: int, channels: int = 1) -> None:
        super().__init__()
        self.lin1 = nn.Linear(z_dim, 256)
        self.lin2 = nn.Linear(256, 256)
        self.lin3 = nn.Linear(256, 32 * 4 * 4)
        self.convT_64 = nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1)
        self.convT1 = nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1)
        self.convT2 = nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1)
        self.convT3 = nn.ConvTranspose2d(32, channels, 4, stride=2, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.lin1(z))
        h = F.relu(self.lin2(h))
        h = F.relu(self.lin3(h)).view(-1, 32, 4, 4)
        for conv in (self.convT_64, self.convT1, self.convT2):
            h = F.relu(conv(h))
        return self.convT3(h)  # Bernoulli logits (the original applies a sigmoid here)


class BurgessVAE(nn.Module):
    """Encoder/decoder of Burgess et al. (2018) for ``[B, channels, 64, 64]`` images.

    ``forward(x)`` returns ``(logits, mu, logvar)``: decoder logits ``[B, C, 64, 64]`` and the posterior
    parameters ``[B, z_dim]``; z = mu in eval mode, a reparameterised sample in train mode. Pass the three
    to :func:`elbits.elbo_terms` for recon and KL in nats per image.
    """

    def __init__(self, z_dim: int = 10, channels: int = 1) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.encoder = _Encoder(z_dim, channels)
        self.decoder = _Decoder(z_dim, channels)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``[B, C, 64, 64]`` in [0, 1] -> ``(mu, logvar)`` each ``[B, z_dim]``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``[B, z_dim]`` -> Bernoulli logits ``[B, C, 64, 64]``."""
        return self.decoder(z)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def load_disentangling_vae(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> BurgessVAE:
    """A :class:`BurgessVAE` in eval mode from a disentangling-vae ``model.pt`` state_dict (or its folder).

    The checkpoint's keys (``encoder.conv1`` ... ``decoder.convT3``) are this module's; ``z_dim`` and the
    channel count are read from the weights. Its ``mu_logvar_gen`` outputs are interleaved, which
    :meth:`BurgessVAE.encode` undoes.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, (dict, OrderedDict)):
        raise TypeError(f"{path} does not hold a state_dict")
    if "state_dict" in state:
        state = state["state_dict"]
    z_dim = state["decoder.lin1.weight"].shape[1]
    channels = state["encoder.conv1.weight"].shape[1]
    model = BurgessVAE(z_dim=z_dim, channels=channels)
    model.load_state_dict(state)
    return model.eval()
