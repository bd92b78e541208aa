"""A small coloured-sprites set with known factors, generated offline (for colour entropy bounds).

Each image is a dSprites shape (procedural renderer, orientation 0) painted in one of a few colours on
black, 64x64x3 uint8. Every factor combination gives a distinct image, so H(X) = log2 N exactly for the
uniform distribution over the set: the truth the colour bounds in :mod:`elbits.entropy` are checked against.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from . import dsprites as ds

PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180]], np.uint8
)


@dataclass(frozen=True)
class ColourSprites:
    """``images`` ``[N, 64, 64, 3]`` uint8, ``factors`` ``[N, 5]`` (shape, colour, scale, posX, posY)."""

    images: np.ndarray
    factors: np.ndarray
    sizes: tuple[int, ...]

    @property
    def factor_bits(self) -> float:
        """log2 of the number of factor combinations, bits per image (= H(X): all images distinct)."""
        return float(np.log2(np.prod(self.sizes)))


def colour_sprites(
    colours: int = 4, scales: tuple[int, ...] = (0, 2, 5), positions: int = 6
) -> ColourSprites:
    """Generate the set: 3 shapes x ``colours`` x ``len(scales)`` dSprites scale classes x positions^2.

    Positions are ``positions`` evenly spaced dSprites posX/posY classes. Default: 1,296 images, ~16 MB.
    """
    if not 1 <= colours <= len(PALETTE):
        raise InputError(f"colours must be in [1, {len(PALETTE)}], got {colours}")
    pos = np.round(np.linspace(0, len(ds.POSITIONS) - 1, positions)).astype(np.int64)
    combos = np.array(list(itertools.product(range(3), range(colours), scales, pos, pos)), dtype=np.int64)
    classes = np.zeros((len(combos), 6), np.int64)
    classes[:, 1], classes[:, 2], classes[:, 4], classes[:, 5] = (
        combos[:, 0],
        combos[:, 2],
        combos[:, 3],
        combos[:, 4],
    )
    masks = ds.render(classes).numpy()
    images = masks[..., None] * PALETTE[combos[:, 1]][:, None, None, :]
    factors = np.stack(
        [
            combos[:, 0],
            combos[:, 1],
            np.searchsorted(scales, combos[:, 2]),
            np.searchsorted(pos, combos[:, 3]),
            np.searchsorted(pos, combos[:, 4]),
        ],
        1,
    )
    return ColourSprites(images.astype(np.uint8), factors, (3, colours, len(scales), positions, positions))


class ColourSpritesDataset(Dataset):
    """Torch view of a :class:`ColourSprites`: item -> (image ``[3, 64, 64]`` float in [0, 1], factors)."""

    def __init__(self, data: ColourSprites) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = torch.from_numpy(self.data.images[i]).permute(2, 0, 1).float() / 255.0
        return img, torch.from_numpy(self.data.factors[i])
