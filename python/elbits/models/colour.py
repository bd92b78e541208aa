"""A Burgess-style conv VAE for 8-bit colour (or grey) images at 32x32 or 64x64, whose decoder emits the
parameter layout of a discrete 8-bit likelihood."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError
from ..likelihoods.layouts import out_channels
from ..torchfiles import check_state_dict

#: The likelihoods the colour decoder has a layout for (all read 8-bit levels).
COLOUR_LIKELIHOODS = ("logistic_mixture", "categorical256", "categorical256_inplace", "discretized_gaussian")
SIZES = (32, 64)
_HIDDEN = 32
_MAX_Z_DIM = 4096
_MAX_CHANNELS = 16
_MAX_HIDDEN = 1024  # bounds what a file's weights may ask to allocate


def colour_out_channels(likelihood: str, channels: int, mixtures: int = 5) -> int:
    """Decoder output channels per pixel for ``likelihood`` on ``channels``-channel images: ``10K`` (RGB) /
    ``3K`` (grey) for ``logistic_mixture``, ``256 C`` for ``categorical256``, ``2C`` for
    ``discretized_gaussian`` (:func:`elbits.likelihoods.layouts.out_channels`)."""
    if likelihood not in COLOUR_LIKELIHOODS:
        raise InputError(
            f"the colour VAE's decoder has layouts for likelihoods {list(COLOUR_LIKELIHOODS)}, "
            f"not {likelihood!r}"
        )
    kind = "logits" if likelihood.startswith("categorical256") else "params"
    return out_channels(likelihood, kind, channels, mixtures)


class ColourVAE(nn.Module):
    """Encoder/decoder of Burgess et al. (2018) for ``[B, channels, size, size]`` 8-bit images, size 32 or 64.

    The encoder reads the levels scaled to [-1, 1]: ``x`` is uint8 levels, or floats level / 255 in [0, 1]
    (what :func:`elbits.train.train` feeds), and sees ``2 x - 1``. Four stride-2 4x4 convolutions (three at
    32 px) of 32 channels take the image to 32 x 4 x 4, then linear layers 512 -> 256 -> 256 -> 2 z_dim give
    ``(mu, logvar)``; the decoder mirrors it and its last transposed convolution emits
    :func:`colour_out_channels` channels: exactly the layout ``likelihood`` reads through
    :func:`elbits.elbo_terms` (via :class:`elbits.train.decoders.Head`), declared by the attributes
    ``likelihood`` and ``decoder_output``. ``forward(x)`` returns ``(out, mu, logvar)``; z = mu in eval
    mode, a reparameterised sample in train mode.
    """

    #: ``encode`` takes uint8 levels as they are: the bits-back codec and the bounds table feed them unscaled.
    reads_levels = True

    def __init__(
        self,
        z_dim: int = 10,
        channels: int = 3,
        size: int = 64,
        likelihood: str = "logistic_mixture",
        mixtures: int = 5,
        hidden: int = _HIDDEN,
    ) -> None:
        super().__init__()
        if size not in SIZES:
            raise InputError(
                f"the colour VAE reads {SIZES[0]}x{SIZES[0]} or {SIZES[1]}x{SIZES[1]} images, not {size}"
            )
        if not (1 <= channels <= _MAX_CHANNELS and 1 <= z_dim <= _MAX_Z_DIM and 1 <= hidden <= _MAX_HIDDEN):
            raise InputError(
                f"{channels} channels, z_dim {z_dim}, width {hidden}; expected 1..{_MAX_CHANNELS}, "
                f"1..{_MAX_Z_DIM} and 1..{_MAX_HIDDEN}"
            )
        self.z_dim, self.channels, self.size, self.mixtures = z_dim, channels, size, mixtures
        self.likelihood = likelihood
        self.decoder_output = "logits" if likelihood.startswith("categorical256") else "params"
        self.out_channels = colour_out_channels(likelihood, channels, mixtures)
        n = 4 if size == 64 else 3  # stride-2 layers to 4x4
        self.enc_convs = nn.ModuleList(
            [nn.Conv2d(channels if i == 0 else hidden, hidden, 4, stride=2, padding=1) for i in range(n)]
        )
        self.enc_lin1 = nn.Linear(hidden * 16, 256)
        self.enc_lin2 = nn.Linear(256, 256)
        self.mu_logvar = nn.Linear(256, 2 * z_dim)
        self.dec_lin1 = nn.Linear(z_dim, 256)
        self.dec_lin2 = nn.Linear(256, 256)
        self.dec_lin3 = nn.Linear(256, hidden * 16)
        self.dec_convs = nn.ModuleList(
            [
                nn.ConvTranspose2d(
                    hidden, self.out_channels if i == n - 1 else hidden, 4, stride=2, padding=1
                )
                for i in range(n)
            ]
        )
        self.hidden = hidden

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``[B, C, size, size]`` (uint8 levels, or floats in [0, 1]) -> ``(mu, logvar)`` [B, Z]."""
        h = x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else 2.0 * x - 1.0
        for conv in self.enc_convs:
            h = F.relu(conv(h))
        h = F.relu(self.enc_lin1(h.flatten(1)))
        h = F.relu(self.enc_lin2(h))
        ml = self.mu_logvar(h)
        return ml[:, : self.z_dim], ml[:, self.z_dim :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``[B, z_dim]`` -> the likelihood's parameters ``[B, out_channels, size, size]``."""
        h = F.relu(self.dec_lin1(z))
        h = F.relu(self.dec_lin2(h))
        h = F.relu(self.dec_lin3(h)).view(-1, self.hidden, 4, 4)
        last = len(self.dec_convs) - 1
        for i, conv in enumerate(self.dec_convs):
            h = conv(h) if i == last else F.relu(conv(h))
        return h

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments (what :func:`colour_from_state_dict` needs besides the weights)."""
        return {
            "z_dim": self.z_dim,
            "channels": self.channels,
            "size": self.size,
            "likelihood": self.likelihood,
            "mixtures": self.mixtures,
            "hidden": self.hidden,
        }


def colour_from_state_dict(
    state: Any, likelihood: str, mixtures: int = 5, where: str = "state_dict"
) -> ColourVAE:
    """A :class:`ColourVAE` in eval mode holding ``state``; ``z_dim``, channels, size and width are read from
    the weights (keys, shapes, dtypes and finiteness checked before loading), ``likelihood`` and ``mixtures``
    come from the run's config (a checkpoint's ``config``). A mismatch raises
    :class:`~elbits.errors.InputError` naming ``where``."""
    if not isinstance(state, Mapping):
        raise InputError(f"{where}: expected a ColourVAE state_dict, got {type(state).__name__}")
    lin1, conv0 = state.get("dec_lin1.weight"), state.get("enc_convs.0.weight")
    if not (isinstance(lin1, torch.Tensor) and lin1.dim() == 2 and isinstance(conv0, torch.Tensor)):
        raise InputError(
            f"{where}: not a ColourVAE state_dict (expected dec_lin1.weight and enc_convs.0.weight)"
        )
    if conv0.dim() != 4:
        raise InputError(f"{where}: enc_convs.0.weight is {list(conv0.shape)}; expected [hidden, C, 4, 4]")
    n = sum(1 for k in state if str(k).startswith("enc_convs.") and str(k).endswith(".weight"))
    model = ColourVAE(
        z_dim=int(lin1.shape[1]),
        channels=int(conv0.shape[1]),
        size=64 if n == 4 else 32,
        likelihood=likelihood,
        mixtures=mixtures,
        hidden=int(conv0.shape[0]),
    )
    model.load_state_dict(check_state_dict(model, state, where))
    return model.eval()
