"""Reading torch files a user gives: never code, checksums verified where the format has them, one-line
errors.

``torch.load(weights_only=True)`` unpickles only tensors and plain containers, but it neither checks a zip
file's CRC-32s (flipped bytes load as finite garbage) nor explains its failures in one line. Here a
zip-format file has every member's CRC-32 verified (Python's ``zipfile``) before torch reads it, a foreign
file is named for what it is, and every failure is an :class:`~elbits.errors.InputError` naming the file.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from .data.npyfile import ZIP_ERRORS, ZIP_MAGIC, describe_start, is_zip, one_line
from .errors import InputError, MissingFileError

PathLike = Union[str, Path]

# torch's pre-1.6 layout opens with its magic number pickled (protocol 2, LONG1): a plain pickle does not.
LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


def _reason(e: BaseException) -> str:
    """``e`` in one line, without torch's advice to load with ``weights_only=False`` (never right here)."""
    text = one_line(e)
    return type(e).__name__ if "weights_only" in text or "weights only" in text.lower() else text


def verify_zip(path: Path, what: str) -> None:
    """Refuse a zip-format torch file that is foreign (no ``data.pkl``), has compressed or encrypted members
    (torch writes neither) or whose members fail their CRC-32."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if not any(i.filename.endswith("/data.pkl") or i.filename == "data.pkl" for i in infos):
                raise InputError(f"{path}: a zip archive but not a torch file (no data.pkl); expected {what}")
            odd = [i.filename for i in infos if i.compress_type != zipfile.ZIP_STORED or i.flag_bits & 0x1]
            if odd or sum(i.file_size for i in infos) > path.stat().st_size:
                raise InputError(
                    f"{path}: not a torch file (compressed, encrypted or oversized members such as "
                    f"{(odd or [infos[0].filename])[0]}); expected {what}"
                )
            bad = zf.testzip()
    except InputError:
        raise
    except ZIP_ERRORS as e:
        raise InputError(f"{path}: corrupt zip archive ({one_line(e)}); expected {what}") from None
    if bad is not None:
        raise InputError(f"{path}: member {bad} fails its CRC-32 check: the file is corrupt; expected {what}")


def load_torch_file(
    path: PathLike, what: str, map_location: Union[str, torch.device] = "cpu", *, require_zip: bool = False
) -> Any:
    """``torch.load(path, weights_only=True)`` of a file the user named, ``what`` it should hold saying
    what was expected in errors.

    A zip-format file (torch >= 1.6) is verified first (:func:`verify_zip`); the older pickle-stream format
    carries no checksum, so only what the caller validates guards it (``require_zip`` refuses it).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no {what} at {path}")
    with path.open("rb") as f:
        lead = f.read(len(LEGACY_MAGIC))
    if lead.startswith(ZIP_MAGIC) and is_zip(path):
        verify_zip(path, what)
    elif lead != LEGACY_MAGIC or require_zip:
        raise InputError(f"{path}: not {what} ({describe_start(lead)})")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(
            f"{path}: not {what}: it holds Python objects other than tensors and plain values, "
            "which elbits never unpickles"
        ) from None
    except Exception as e:  # noqa: BLE001 - any failure to parse the user's bytes is a bad file, said in one line
        raise InputError(f"{path}: unreadable as {what} ({_reason(e)})") from None


def _listing(items: list[str], limit: int = 3) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def check_state_dict(model: nn.Module, state: Any, where: str) -> Mapping[str, torch.Tensor]:
    """``state`` when it is a state_dict that fits ``model`` exactly: the same keys, shapes and floating
    dtypes, dense and finite; else an :class:`~elbits.errors.InputError` saying what differs."""
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InputError(
            f"{where}: expected a state_dict (parameter names -> tensors), got {type(state).__name__}"
        )
    want = model.state_dict()
    problems = []
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    if missing:
        problems.append(f"missing {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected {_listing(unexpected)}")
    shared = [k for k in want if k in state]
    wrong = [
        f"{k} is {list(state[k].shape)} (expected {list(want[k].shape)})"
        for k in shared
        if state[k].shape != want[k].shape
    ]
    if wrong:
        problems.append(_listing(wrong))
    kinds = [
        f"{k} is {state[k].dtype}{'' if state[k].layout == torch.strided else ' ' + str(state[k].layout)}"
        for k in shared
        if state[k].layout != torch.strided
        or state[k].is_meta
        or state[k].is_floating_point() != want[k].is_floating_point()
    ]
    if kinds:
        problems.append(_listing(kinds) + " (expected dense tensors of the model's kinds)")
    if problems:
        raise InputError(
            f"{where}: the state_dict does not fit {type(model).__name__}: " + "; ".join(problems)
        )
    nonfinite = [
        k for k in shared if state[k].is_floating_point() and not bool(torch.isfinite(state[k]).all())
    ]
    if nonfinite:
        raise InputError(f"{where}: non-finite (NaN or infinite) weights in {_listing(nonfinite)}")
    return state
