"""Checkpoints: model, optimiser, criterion (its controller), every rank's meter, step and config.

Written atomically (a temporary file renamed over the old one), read with ``weights_only=True``: every value
is a tensor or a plain number, string, list or dict.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import torch

FORMAT = 1


def save_checkpoint(path: Union[str, Path], state: dict[str, Any]) -> Path:
    """Write ``state`` (plus a format number) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an elbits training checkpoint (format {FORMAT})")
    return state
