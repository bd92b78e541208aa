"""Small user models and data sets for the training tests: 8x8 images, a few parameters, fast steps."""

from __future__ import annotations

import torch
from torch import nn

from elbits.train import TrainConfig

QUIET = dict(progress=False, tensorboard=False)


def binary_images(n: int = 64, side: int = 8, seed: int = 0, channels: int = 1) -> list:
    """``n`` random binary images ``[channels, side, side]`` as ``(image, label)`` items."""
    g = torch.Generator().manual_seed(seed)
    return [((torch.rand(channels, side, side, generator=g) < 0.3).float(), 0) for _ in range(n)]


class TinyVAE(nn.Module):
    """encode/decode/forward over flattened ``[C, side, side]`` images; ``out_channels`` per pixel."""

    def __init__(
        self,
        side: int = 8,
        channels: int = 1,
        out_channels: int = 1,
        z: int = 2,
        decoder_output: str = "logits",
    ) -> None:
        super().__init__()
        self.shape = (out_channels, side, side)
        self.enc = nn.Linear(channels * side * side, 2 * z)
        self.dec = nn.Linear(z, out_channels * side * side)
        self.z = z
        self.decoder_output = decoder_output

    def encode(self, x):
        h = self.enc(x.flatten(1))
        return h[:, : self.z], h[:, self.z :]

    def decode(self, z):
        return self.dec(z).view(-1, *self.shape)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar


def tiny_model(seed: int = 0, **kw) -> TinyVAE:
    torch.manual_seed(seed)
    return TinyVAE(**kw)


def tiny_config(out_dir, **kw) -> TrainConfig:
    """A few steps of 8 images, a record every 2 steps, target-rate (a controller with state)."""
    base = dict(
        steps=8,
        batch_size=8,
        log_every=2,
        controller="target-rate",
        target_bits=4.0,
        controller_lr=0.05,
        out_dir=str(out_dir),
        eval_at_end=False,
        **QUIET,
    )
    return TrainConfig(**{**base, **kw})


def without_wall(records: list) -> list:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]
