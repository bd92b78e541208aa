"""argparse types shared by the subcommands: each turns the text of one flag into a value or rejects it
with one line saying what was expected, which argparse prints as ``elbits <command>: error: argument ...``.

Paths are checked here, before any work starts, so that a typo costs nothing; the values stay the user's
strings (they are stored in configs and checkpoints as given).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable

import torch

#: Seeds go to torch.manual_seed (at most 2**64 - 1) and numpy's default_rng (>= 0).
SEED_MAX = 2**63 - 1


def _fail(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _fail(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1 (steps, batch sizes, sample counts)."""
    v = _int(text, "a positive integer")
    if v < 1:
        raise _fail(f"expected a positive integer, got {text!r}")
    return v


def count_or_all(text: str) -> int:
    """An integer >= 0, where 0 means 'all' (limits, subset sizes)."""
    v = _int(text, "an integer >= 0 (0 = all)")
    if v < 0:
        raise _fail(f"expected an integer >= 0 (0 = all), got {text!r}")
    return v


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (0 switches the feature off, e.g. --checkpoint-every 0: at the end only)."""
    v = _int(text, "an integer >= 0")
    if v < 0:
        raise _fail(f"expected an integer >= 0, got {text!r}")
    return v


def seed(text: str) -> int:
    """A random seed, 0 <= seed < 2**63."""
    v = _int(text, f"a seed, an integer in [0, {SEED_MAX}]")
    if not 0 <= v <= SEED_MAX:
        raise _fail(f"expected a seed, an integer in [0, {SEED_MAX}], got {text!r}")
    return v


def _float(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise _fail(f"expected {what}, got {text!r}") from None
    if not math.isfinite(v):
        raise _fail(f"expected {what}, got {text!r}")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, targets in bits, gamma)."""
    v = _float(text, "a finite number > 0")
    if v <= 0:
        raise _fail(f"expected a finite number > 0, got {text!r}")
    return v


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (beta, weight decay)."""
    v = _float(text, "a finite number >= 0")
    if v < 0:
        raise _fail(f"expected a finite number >= 0, got {text!r}")
    return v


def float_list(item: Callable[[str], float]) -> Callable[[str], list[float]]:
    """Comma or space separated numbers, each checked by ``item``; '' is the empty list."""

    def parse(text: str) -> list[float]:
        values = []
        for part in text.replace(",", " ").split():
            try:
                values.append(item(part))
            except argparse.ArgumentTypeError as e:
                raise _fail(f"in {text!r}: {e}") from None
        return values

    parse.__name__ = f"list of {item.__name__}"
    return parse


def _existing_ancestor(path: str) -> str:
    p = os.path.abspath(path)
    while not os.path.lexists(p):
        p = os.path.dirname(p)
    return p


def _can_create_in(folder: str) -> bool:
    # A real write rather than os.access: root passes access() on read-only mounts and chmod 0555 folders
    # alike, and only the first stops it writing.
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def _check_creatable(path: str, what: str) -> None:
    """``path`` does not exist: its nearest existing ancestor must be a folder we can write in."""
    base = _existing_ancestor(path)
    if not os.path.isdir(base):
        raise _fail(f"cannot create {what} {path!r}: {base} is a file, not a folder")
    if not _can_create_in(base):
        raise _fail(f"cannot create {what} {path!r}: {base} is read-only or not writable by this user")


def output_dir(text: str) -> str:
    """A folder to write into: an existing writable directory, or one that can be created."""
    if not text:
        raise _fail("expected a folder path, got ''")
    if os.path.isdir(text):
        if not _can_create_in(text):
            raise _fail(f"cannot write in {text!r}: the folder is read-only or not writable by this user")
    elif os.path.lexists(text):
        kind = "a file" if os.path.isfile(text) else "not a folder"
        raise _fail(f"{text!r} is {kind}; expected a folder to write the results into")
    else:
        _check_creatable(text, "folder")
    return text


def output_file(text: str) -> str:
    """A file to write or append to: not a folder; an existing file must be writable."""
    if not text:
        raise _fail("expected a file path, got ''")
    if os.path.isdir(text):
        raise _fail(f"{text!r} is a folder; expected a file path to write")
    if os.path.lexists(text):
        try:
            # Append mode leaves an existing file as it was.
            with open(text, "ab"):
                pass
        except OSError as e:
            raise _fail(f"cannot write {text!r}: {e.strerror}") from None
    else:
        _check_creatable(text, "file")
    return text


def readable_file(text: str) -> str:
    """An existing file this user can read."""
    if not text:
        raise _fail("expected a file path, got ''")
    if os.path.isdir(text):
        raise _fail(f"{text!r} is a folder; expected a file")
    if not os.path.exists(text):
        raise _fail(f"no such file: {text!r}")
    try:
        with open(text, "rb"):
            pass
    except OSError as e:
        raise _fail(f"cannot read {text!r}: {e.strerror}") from None
    return text


def image_source(text: str) -> str:
    """An existing folder this user can list (of images to read), or a readable file (an image or array)."""
    if not text:
        raise _fail("expected a folder of images or an image / .npy / .npz file, got ''")
    if not os.path.isdir(text):
        if not os.path.exists(text):
            raise _fail(f"no such folder or file: {text!r}; expected a folder of images or an image file")
        return readable_file(text)
    try:
        os.listdir(text)
    except OSError as e:
        raise _fail(f"cannot read the folder {text!r}: {e.strerror}") from None
    return text


def image_file(text: str) -> str:
    """A readable ``.npy`` of images or the reference ``.png`` grid."""
    readable_file(text)
    if os.path.splitext(text)[1].lower() not in (".npy", ".png"):
        raise _fail(f"{text!r}: expected a .npy of binary 64x64 images or the reference 10x10 .png grid")
    return text


def checkpoint(*names: str, auto: bool = False) -> Callable[[str], str]:
    """A readable checkpoint file, or a folder holding one of ``names`` (``auto``: also the word auto, for
    --resume's own checkpoint, which the command checks)."""

    def parse(text: str) -> str:
        if auto and text == "auto":
            return text
        if os.path.isdir(text):
            found = [n for n in names if os.path.isfile(os.path.join(text, n))]
            if not found:
                raise _fail(
                    f"{text!r} is a folder without {' or '.join(names)}; expected a checkpoint file "
                    "or a folder holding one"
                )
            readable_file(os.path.join(text, found[0]))
        else:
            readable_file(text)
        return text

    parse.__name__ = "checkpoint"
    return parse


def device(allow_auto: bool = True) -> Callable[[str], str]:
    """A torch device that exists on this machine: cpu, cuda, cuda:N (and ``auto`` when allowed)."""
    expected = ("auto, " if allow_auto else "") + "cpu, cuda or cuda:N"

    def parse(text: str) -> str:
        if allow_auto and text == "auto":
            return text
        try:
            dev = torch.device(text)
        except (RuntimeError, ValueError):
            raise _fail(f"unknown device {text!r}; expected {expected}") from None
        if dev.type == "cpu":
            return text
        if dev.type != "cuda":
            raise _fail(
                f"device {text!r} is not supported (elbits has CPU and CUDA kernels); expected {expected}"
            )
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise _fail(
                f"{text!r}: no CUDA device on this machine (torch {torch.__version__}, {build}); "
                "use --device cpu"
            )
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise _fail(
                f"{text!r} does not exist: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}"
            )
        return text

    parse.__name__ = "device"
    return parse


#: The types above that name the user's files: an OSError about one of these is the user's to fix.
PATH_TYPES = frozenset(
    {"output_dir", "output_file", "readable_file", "image_file", "image_source", "checkpoint"}
)
