"""The Burgess et al. (2018) VAE for 64x64 binary images, loadable from disentangling-vae checkpoints."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from ..data.npyfile import one_line
from ..errors import InputError
from ..torchfiles import check_state_dict, load_torch_file


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
    def __init__(self, z_dim: int, channels: int = 1) -> None:  # channels: of the output
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
        return self.convT3(
            h
        )  # Bernoulli logits (the original applies a sigmoid here), or a likelihood's parameters


class BurgessVAE(nn.Module):
    """Encoder/decoder of Burgess et al. (2018) for ``[B, channels, 64, 64]`` images.

    ``forward(x)`` returns ``(logits, mu, logvar)``: decoder logits ``[B, C, 64, 64]`` and the posterior
    parameters ``[B, z_dim]``; z = mu in eval mode, a reparameterised sample in train mode. Pass the three
    to :func:`elbits.elbo_terms` for recon and KL in nats per image. ``out_channels`` (default
    ``channels``) sizes the decoder's last layer for another likelihood's parameter layout, e.g.
    ``256 * channels`` logits for ``"categorical256"`` (:mod:`elbits.train.decoders`).
    """

    def __init__(self, z_dim: int = 10, channels: int = 1, out_channels: Optional[int] = None) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.encoder = _Encoder(z_dim, channels)
        self.decoder = _Decoder(z_dim, channels if out_channels is None else out_channels)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``[B, C, 64, 64]`` in [0, 1] -> ``(mu, logvar)`` each ``[B, z_dim]``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``[B, z_dim]`` -> Bernoulli logits ``[B, C, 64, 64]`` (``[B, out_channels, 64, 64]``)."""
        return self.decoder(z)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


MAX_Z_DIM = 4096  # bounds what a file's weights may ask to allocate
MAX_CHANNELS = 16
MAX_OUT_CHANNELS = 256 * MAX_CHANNELS  # categorical256's layout


def burgess_from_state_dict(state: Any, where: str) -> BurgessVAE:
    """A :class:`BurgessVAE` in eval mode holding ``state`` (a state_dict, or ``{"state_dict": ...}``).

    ``z_dim`` and the channel count are read from the weights; keys, shapes, dtypes and finiteness are
    checked (:func:`elbits.torchfiles.check_state_dict`) before anything is loaded: a mismatch raises
    :class:`~elbits.errors.InputError` naming ``where``.
    """
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise InputError(f"{where}: expected a Burgess VAE state_dict, got {type(state).__name__}")
    lin1, conv1 = state.get("decoder.lin1.weight"), state.get("encoder.conv1.weight")
    if not (
        isinstance(lin1, torch.Tensor)
        and lin1.dim() == 2
        and isinstance(conv1, torch.Tensor)
        and conv1.dim() == 4
    ):
        raise InputError(
            f"{where}: not a Burgess VAE state_dict (expected decoder.lin1.weight [256, z_dim] and "
            "encoder.conv1.weight [32, channels, 4, 4])"
        )
    z_dim, channels = int(lin1.shape[1]), int(conv1.shape[1])
    if not (1 <= z_dim <= MAX_Z_DIM and 1 <= channels <= MAX_CHANNELS):
        raise InputError(
            f"{where}: z_dim {z_dim}, {channels} channels; expected 1..{MAX_Z_DIM} and 1..{MAX_CHANNELS}"
        )
    # A decoder trained for another likelihood's layout has more output channels (ConvTranspose2d: [in, out,
    # k, k]).
    last = state.get("decoder.convT3.weight")
    out = int(last.shape[1]) if isinstance(last, torch.Tensor) and last.dim() == 4 else channels
    if not 1 <= out <= MAX_OUT_CHANNELS:
        raise InputError(f"{where}: {out} decoder output channels; expected 1..{MAX_OUT_CHANNELS}")
    model = BurgessVAE(z_dim=z_dim, channels=channels, out_channels=out)
    model.load_state_dict(check_state_dict(model, state, where))
    return model.eval()


def load_disentangling_vae(
    path: Union[str, Path], map_location: Union[str, torch.device] = "cpu"
) -> BurgessVAE:
    """A :class:`BurgessVAE` in eval mode from a disentangling-vae ``model.pt`` state_dict (or its folder).

    The checkpoint's keys (``encoder.conv1`` ... ``decoder.convT3``) are this module's; ``z_dim`` and the
    channel count are read from the weights. Its ``mu_logvar_gen`` outputs are interleaved, which
    :meth:`BurgessVAE.encode` undoes. Read with ``weights_only=True``; these files (torch's pre-1.6 format)
    carry no checksum, so every key, shape and value is validated instead (:func:`burgess_from_state_dict`).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    state = load_torch_file(path, "a disentangling-vae model.pt state_dict", map_location)
    return burgess_from_state_dict(state, str(path))


SPECS_KEYS = ("experiment", "loss", "epochs", "batch_size", "lr", "latent_dim")
_MAX_SPECS_BYTES = 1 << 20


def disentangling_vae_specs(path: Union[str, Path]) -> dict[str, Any]:
    """The :data:`SPECS_KEYS` settings of a disentangling-vae ``specs.json`` (missing ones None).

    Plain JSON (nothing in it can run); a file over 1 MiB, not UTF-8 JSON or not an object raises
    :class:`~elbits.errors.InputError` naming it.
    """
    path = Path(path)
    if path.stat().st_size > _MAX_SPECS_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes; a specs.json is a small JSON object")
    try:
        specs = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise InputError(
            f"{path}: not JSON ({one_line(e)}); expected disentangling-vae's specs object"
        ) from None
    if not isinstance(specs, dict):
        raise InputError(f"{path}: a JSON {type(specs).__name__}; expected disentangling-vae's specs object")
    return {k: specs.get(k) for k in SPECS_KEYS}
