"""Image grids: batches of images ``[N, C, H, W]`` in [0, 1] laid out in rows, as an array or a PNG file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image


def _levels(batch: Any) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` of a batch in [0, 1]: grey for one channel, RGB for three, else the first."""
    x = torch.as_tensor(batch).detach().cpu().float().clamp(0, 1)
    if x.dim() == 3:
        x = x[:, None]
    x = x[:, :3] if x.shape[1] == 3 else x[:, :1].expand(-1, 3, -1, -1)
    return (x * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def image_grid(rows: Sequence[Any], pad: int = 1, fill: int = 255) -> np.ndarray:
    """One uint8 picture ``[H', W', 3]``: each batch of ``rows`` a row of images (``[N, C, H, W]`` in [0, 1],
    every row of the same image size), ``pad`` pixels of level ``fill`` between them."""
    batches = [_levels(r) for r in rows]
    if not batches or not len(batches[0]):
        raise ValueError("no images for the grid")
    h, w = batches[0].shape[1:3]
    cols = max(len(b) for b in batches)
    out = np.full((len(batches) * (h + pad) + pad, cols * (w + pad) + pad, 3), fill, np.uint8)
    for i, b in enumerate(batches):
        if b.shape[1:3] != (h, w):
            raise ValueError(
                f"grid rows hold {h}x{w} and {b.shape[1]}x{b.shape[2]} images; expected one size"
            )
        for j, img in enumerate(b):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = img
    return out


def save_grid(rows: Sequence[Any], path: Union[str, Path], scale: int = 3) -> Path:
    """:func:`image_grid` of ``rows`` written as a PNG, each pixel drawn as ``scale`` x ``scale``
    (nearest neighbour: the pixels as they are)."""
    pic = image_grid(rows)
    if scale > 1:
        pic = pic.repeat(scale, axis=0).repeat(scale, axis=1)
    path = Path(path)
    Image.fromarray(pic).save(path, format="PNG")
    return path


__all__ = ["image_grid", "save_grid"]
