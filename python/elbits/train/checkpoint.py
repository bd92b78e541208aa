"""Checkpoints: model, optimiser, criterion (its controller), every rank's meter, step and config.

File layout (format 2): one ASCII line ``elbits checkpoint 2 sha256 <64 hex digits>\\n``, then the
``torch.save`` bytes of the state, which the hash covers. The loader verifies the hash before torch reads a
byte of the payload, then reads it with ``weights_only=True`` (every value is a tensor or a plain number,
string, list or dict) and checks the structure. Written atomically: a temporary file, flushed to disk, then
renamed over the old one.

Format 1 (a bare torch zip, before the hash) is still read: its members' CRC-32s, which torch itself never
checks, are verified instead (they catch every burst of flipped bits up to 32 long and all but 2^-32 of
other damage); a format-1 file in torch's older non-zip layout has no checksum and is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import torch

from ..errors import InputError, MissingFileError
from ..torchfiles import load_torch_file

FORMAT = 2
MAGIC = b"elbits checkpoint "
_HEADER = re.compile(rb"elbits checkpoint (\d+) sha256 ([0-9a-f]{64})\n")
_HEADER_BYTES = len(b"elbits checkpoint 2 sha256 \n") + 64

# What a training checkpoint holds (what train.loop saves): the keys load_checkpoint requires by default.
TRAINING_KEYS = (
    "step",
    "samples_seen",
    "world_size",
    "config",
    "model",
    "optimizer",
    "criterion",
    "meters",
    "loss_windows",
)
_TYPES: dict[str, type] = {
    "step": int,
    "samples_seen": int,
    "world_size": int,
    "config": dict,
    "model": dict,
    "optimizer": dict,
    "criterion": dict,
    "meters": list,
    "loss_windows": list,
}

WHAT = "an elbits training checkpoint"


def save_checkpoint(path: Union[str, Path], state: Mapping[str, Any]) -> Path:
    """Write ``state`` (plus the format number) to ``path`` atomically, behind its sha256 (format 2)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({**state, "format": FORMAT}, buf)
    payload = buf.getbuffer()
    header = b"%s%d sha256 %s\n" % (MAGIC, FORMAT, hashlib.sha256(payload).hexdigest().encode())
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(header)
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def is_checkpoint_file(path: Union[str, Path]) -> bool:
    """Whether ``path`` starts with the format-2 checkpoint header line (says nothing of its integrity)."""
    with Path(path).open("rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def load_checkpoint(
    path: Union[str, Path],
    map_location: Union[str, torch.device] = "cpu",
    require: Sequence[str] = TRAINING_KEYS,
) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`, verified before use.

    Format 2: the sha256 of the payload must match its header; format 1: every member's CRC-32. Then the
    state must be a dict holding ``require`` (default: everything a training run saves) with the right
    types, ``model`` a state_dict. Anything else (truncated, empty, flipped bytes, a foreign torch or zip
    file) raises :class:`~elbits.errors.InputError` naming the file, before any of it is used.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no checkpoint at {path}")
    with path.open("rb") as f:
        lead = f.read(_HEADER_BYTES)
    if lead.startswith(MAGIC):
        state = _load_format2(path, lead, map_location)
    else:
        # Format 1 was a bare torch zip: load_torch_file verifies its CRC-32s (require_zip: the older
        # non-zip layout has none).
        state = load_torch_file(path, WHAT, map_location, require_zip=True)
        if not isinstance(state, dict) or state.get("format") != 1:
            raise InputError(f"{path}: a torch file but not {WHAT} (no elbits format number)")
    return validate_state(state, path, require)


def _load_format2(path: Path, lead: bytes, map_location: Union[str, torch.device]) -> dict[str, Any]:
    m = _HEADER.match(lead)
    if m is None:
        raise InputError(
            f"{path}: damaged checkpoint header line; expected "
            "'elbits checkpoint <format> sha256 <64 hex digits>'"
        )
    if int(m.group(1)) != FORMAT:
        raise InputError(
            f"{path}: checkpoint format {int(m.group(1))}; this elbits reads formats 1 and {FORMAT}"
        )
    data = path.read_bytes()
    payload = memoryview(data)[m.end() :]
    if hashlib.sha256(payload).hexdigest().encode() != m.group(2):
        raise InputError(
            f"{path}: fails its sha256 integrity check ({len(payload)} payload bytes): the file is "
            "corrupt or truncated; nothing was loaded from it"
        )
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a payload that hashes right but does not parse was not written by elbits
        raise InputError(
            f"{path}: its payload is not a torch file elbits wrote ({type(e).__name__})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"{path}: its payload is not {WHAT} (format {FORMAT})")
    return state


def validate_state(
    state: dict[str, Any], path: Union[str, Path], require: Sequence[str] = TRAINING_KEYS
) -> dict[str, Any]:
    """``state`` when it holds every key of ``require`` with its type (ints >= 0, ``world_size`` >= 1,
    ``model`` a state_dict, one meter and loss window per rank); else an InputError naming ``path``."""
    missing = [k for k in require if k not in state]
    if missing:
        raise InputError(f"{path}: {WHAT} without {', '.join(missing)}")
    for k, want in _TYPES.items():
        if k in state and (not isinstance(state[k], want) or (want is int and isinstance(state[k], bool))):
            raise InputError(
                f"{path}: checkpoint entry {k!r} is a {type(state[k]).__name__}; expected a {want.__name__}"
            )
    for k in ("step", "samples_seen"):
        if k in state and state[k] < 0:
            raise InputError(f"{path}: checkpoint {k} is {state[k]}; expected >= 0")
    world = state.get("world_size")
    if world is not None and world < 1:
        raise InputError(f"{path}: checkpoint world_size is {world}; expected >= 1")
    for k in ("meters", "loss_windows"):
        if world is not None and k in state and len(state[k]) != world:
            raise InputError(
                f"{path}: checkpoint holds {len(state[k])} {k} for world_size {world}; expected one per rank"
            )
    model = state.get("model")
    if model is not None and not all(
        isinstance(n, str) and isinstance(t, torch.Tensor) for n, t in model.items()
    ):
        raise InputError(f"{path}: checkpoint 'model' is not a state_dict (parameter names -> tensors)")
    return state
