"""A trained model from a file: an elbits training checkpoint or a disentangling-vae ``model.pt``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from ..errors import InputError, MissingFileError
from ..torchfiles import load_torch_file
from ..train.checkpoint import is_checkpoint_file, load_checkpoint, validate_state
from .burgess import burgess_from_state_dict, disentangling_vae_specs

PathLike = Union[str, Path]


def load_model(path: PathLike, device: Union[str, torch.device] = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """``(model, info)`` from an elbits training checkpoint or a disentangling-vae ``model.pt`` (or folder).

    An elbits checkpoint (``{"format": 2, "model": state_dict, "config": {...}, "step": ...}`` behind its
    sha256, see :mod:`elbits.train.checkpoint`) holds a :class:`~elbits.models.BurgessVAE` state_dict (the
    default model of ``elbits train``); its ``z_dim`` and channels are read from the weights. Nothing is
    unpickled beyond tensors and plain values; corrupt, foreign or mismatched files raise
    :class:`~elbits.errors.InputError` naming the file. ``info``: ``kind``, ``path``, ``z_dim`` and, for
    elbits checkpoints, ``step`` and the training ``config``; for disentangling-vae, its ``specs.json``.
    """
    p = Path(path)
    if p.is_dir():
        p = p / ("checkpoint.pt" if (p / "checkpoint.pt").is_file() else "model.pt")
    if not p.is_file():
        raise MissingFileError(f"no checkpoint at {p}")
    info: dict[str, Any] = {"path": str(p)}
    if is_checkpoint_file(p):
        state: Any = load_checkpoint(p, require=("model",))
    else:
        state = load_torch_file(p, "an elbits checkpoint or a disentangling-vae model.pt")
        if (
            isinstance(state, dict) and "format" in state
        ):  # an elbits checkpoint of format 1 (a bare torch zip)
            if state["format"] != 1:
                raise InputError(f"{p}: elbits checkpoint format {state['format']!r} without its header line")
            state = validate_state(state, p, require=("model",))
    model: nn.Module
    if isinstance(state, dict) and "format" in state:
        model = burgess_from_state_dict(state["model"], str(p))
        config = state.get("config", {})
        info.update(
            kind="elbits",
            step=int(state.get("step", 0)),
            config=config if isinstance(config, dict) else {},
            z_dim=int(model.z_dim),
        )
    else:
        model = burgess_from_state_dict(state, str(p))
        info.update(kind="disentangling-vae", z_dim=int(model.z_dim))
        specs = p.parent / "specs.json"
        if specs.is_file():
            info["specs"] = disentangling_vae_specs(specs)
    return model.to(device).eval(), info


__all__ = ["load_model"]
