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
from .colour import COLOUR_LIKELIHOODS, ColourVAE, colour_from_state_dict

PathLike = Union[str, Path]


def load_model(path: PathLike, device: Union[str, torch.device] = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """``(model, info)`` from an elbits training checkpoint or a disentangling-vae ``model.pt`` (or folder).

    An elbits checkpoint (``{"format": 2, "model": state_dict, "config": {...}, "step": ...}`` behind its
    sha256, see :mod:`elbits.train.checkpoint`) holds the default model of ``elbits train``: a
    :class:`~elbits.models.BurgessVAE` state_dict for dSprites, a :class:`~elbits.models.ColourVAE` one for
    colour data (its config's ``data`` is not ``dsprites``), rebuilt with the config's ``likelihood`` and
    ``mixture_components``; ``z_dim``, channels and (colour) size are read from the weights. Nothing is
    unpickled beyond tensors and plain values; corrupt, foreign or mismatched files raise
    :class:`~elbits.errors.InputError` naming the file. ``info``: ``kind``, ``path``, ``z_dim``, ``colour``
    and, for elbits checkpoints, ``step`` and the training ``config`` (colour: also ``channels``, ``size``);
    for disentangling-vae, its ``specs.json``.
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
        config = state.get("config", {})
        config = config if isinstance(config, dict) else {}
        info.update(kind="elbits", step=int(state.get("step", 0)), config=config)
        if config.get("data", "dsprites") != "dsprites":
            model = _colour_model(state["model"], config, str(p))
            info.update(colour=True, channels=int(model.channels), size=int(model.size))
        else:
            model = burgess_from_state_dict(state["model"], str(p))
            info["colour"] = False
        info["z_dim"] = int(model.z_dim)
    else:
        model = burgess_from_state_dict(state, str(p))
        info.update(kind="disentangling-vae", z_dim=int(model.z_dim), colour=False)
        specs = p.parent / "specs.json"
        if specs.is_file():
            info["specs"] = disentangling_vae_specs(specs)
    return model.to(device).eval(), info


def _colour_model(weights: Any, config: dict[str, Any], where: str) -> ColourVAE:
    """The ColourVAE of a colour run's checkpoint: the layout from its config, the sizes from its weights."""
    likelihood = config.get("likelihood")
    if likelihood not in COLOUR_LIKELIHOODS:
        raise InputError(
            f"{where}: a colour checkpoint (data {config.get('data')!r}) with likelihood {likelihood!r}; "
            f"expected one of {list(COLOUR_LIKELIHOODS)}"
        )
    k = config.get("mixture_components", 5)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"{where}: mixture_components {k!r} in its config; expected an integer >= 1")
    return colour_from_state_dict(weights, str(likelihood), k, where)


__all__ = ["load_model"]
