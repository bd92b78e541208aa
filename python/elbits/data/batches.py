"""Batches of a dataset as float images: the one place training, evaluation and the sweeps read data."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InputError


def fetch(dataset: Any, items: Any) -> torch.Tensor:
    """``[B, C, H, W]`` float32 images of dataset positions ``items``.

    Three kinds of dataset: one with an ``images(items)`` batch read (dSprites: its values as they are);
    one whose ``images`` attribute is an array ``[N, C, H, W]`` (:class:`~elbits.data.ImageFolder`: rows
    read straight from its memory map, uint8 levels scaled by 1/255 to [0, 1]); any other is stacked from
    ``dataset[i]`` (an image ``[C, H, W]`` or ``[H, W]``, or a tuple / list whose first element is one).
    Values are not checked here: :func:`elbits.train.check_images` does that.
    """
    items = np.asarray(items, dtype=np.int64)
    images = getattr(dataset, "images", None)
    if callable(images):
        x = torch.as_tensor(images(items))
    elif isinstance(images, np.ndarray):
        order = np.argsort(items, kind="stable")  # sorted reads are kinder to a memory map
        rows = np.empty((len(items), *images.shape[1:]), images.dtype)
        rows[order] = images[items[order]]
        x = torch.from_numpy(rows)
        if x.dtype == torch.uint8:
            return x.float().div_(255.0)
    else:
        out = []
        for i in items.tolist():
            it = dataset[i]
            img = it[0] if isinstance(it, (tuple, list)) and len(it) > 0 else it
            if not isinstance(img, (torch.Tensor, np.ndarray)):
                raise InputError(
                    f"dataset[{i}] is a {type(it).__name__}"
                    + (f" whose first element is a {type(img).__name__}" if img is not it else "")
                    + "; expected an image tensor [C, H, W] in [0, 1], or a tuple starting with one"
                )
            out.append(torch.as_tensor(img))
        shapes = {tuple(t.shape) for t in out}
        if len(shapes) > 1:
            raise InputError(
                f"dataset images differ in shape ({sorted(shapes)[:3]}); expected one shape [C, H, W]"
            )
        x = torch.stack(out)
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4:
        raise InputError(f"dataset images are {list(x.shape[1:])}; expected [C, H, W] or [H, W]")
    return x.float()
