"""Fuzz target for every loader of user files: each input must load cleanly or raise InputError, never run
code.

Coverage-guided, with atheris (``pip install atheris``; not a test dependency)::

    python tests/fuzz_loaders.py --write-corpus /tmp/fuzz-corpus      # seed files, one per loader
    PYTHONPATH=python python tests/fuzz_loaders.py /tmp/fuzz-corpus -max_total_time=120

An input's first byte picks the loader (:data:`LOADERS`), the rest is the file. Without atheris,
:func:`replay` runs the same check over seeded byte-level mutations of the seed files; the test suite does
that (tests/test_hostile_files.py), so it stays deterministic.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

MARKER_NAME = "elbits-fuzz-code-ran"


class RunsCode:
    """Unpickling this creates the file ``path``: the proof that a loader ran code from a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _npz(imgs: np.ndarray, classes: np.ndarray, compressed: bool, **extra) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, imgs=imgs, latents_classes=classes, **extra)
    return buf.getvalue()


def _grid_png(images: np.ndarray) -> bytes:
    from PIL import Image

    grid = np.full((662, 662), 255, np.uint8)
    for k, im in enumerate(images[:100]):
        r, c = divmod(k, 10)
        grid[2 + 66 * r : 66 + 66 * r, 2 + 66 * c : 66 + 66 * c] = np.where(im > 0, 0, 255)
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    return buf.getvalue()


def _torch_bytes(obj, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def _checkpoint_bytes(tmp: Path) -> bytes:
    from elbits.models import BurgessVAE
    from elbits.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    p = save_checkpoint(
        tmp / "seed-checkpoint.pt", {"step": 3, "config": {"z_dim": 2}, "model": BurgessVAE(2).state_dict()}
    )
    return p.read_bytes()


def seeds(marker: str) -> dict[str, list[bytes]]:
    """Valid files for each loader, and hostile ones that would create ``marker`` if code ran."""
    from elbits.data import dsprites as ds
    from elbits.models import BurgessVAE

    idx = np.arange(0, ds.NUM_IMAGES, 97_001)
    classes = ds.index_to_classes(idx)
    imgs = ds.render(classes).numpy()
    evil = np.array([RunsCode(marker)], dtype=object)
    npy = io.BytesIO()
    np.save(npy, imgs[:3])
    evil_npy = io.BytesIO()
    np.save(evil_npy, evil, allow_pickle=True)
    torch.manual_seed(0)
    state = BurgessVAE(2).state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = _checkpoint_bytes(Path(tmp))
    import pickle

    plain_evil = pickle.dumps(RunsCode(marker))
    return {
        "npz": [
            _npz(imgs, classes, False),
            _npz(imgs, classes, True),
            _npz(imgs, classes, False, metadata=evil),
            _npz(imgs, evil, False),
            plain_evil,
        ],
        "checkpoint": [
            ckpt,
            _torch_bytes({"format": 1, "model": state}),
            _torch_bytes({"format": 1, "x": RunsCode(marker)}),
        ],
        "model": [_torch_bytes(state, legacy=True), _torch_bytes({"format": 1, "model": state}), plain_evil],
        "images": [npy.getvalue(), _grid_png(imgs), evil_npy.getvalue()],
    }


def _load_npz(path: Path) -> None:
    from elbits.data.dsprites import NpzDSprites

    data = NpzDSprites(path)
    x = data.images(np.arange(len(data)))
    assert x.dtype == torch.uint8 and x.shape[1:] == (64, 64) and int(x.max()) <= 1
    assert data.classes.shape == (len(data), 6)


def _load_checkpoint(path: Path) -> None:
    from elbits.train.checkpoint import load_checkpoint

    state = load_checkpoint(path, require=("model",))
    assert isinstance(state["model"], dict)


def _load_model(path: Path) -> None:
    from elbits.evaluate import load_model

    model, info = load_model(path)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters()), info


def _load_images(path: Path) -> None:
    from elbits.evaluate import load_images

    x = load_images(path)
    assert x.dtype == torch.uint8 and x.shape[1:] == (1, 64, 64) and int(x.max()) <= 1


#: Loader name -> a call that must either succeed (and return sane content) or raise InputError.
LOADERS: dict[str, Callable[[Path], None]] = {
    "npz": _load_npz,
    "checkpoint": _load_checkpoint,
    "model": _load_model,
    "images": _load_images,
}
_NAMES = {"npz": "data.npz", "checkpoint": "checkpoint.pt", "model": "model.pt", "images": "images.npy"}


def check(loader: str, data: bytes, folder: Path) -> bool:
    """Write ``data`` as ``loader``'s file in ``folder`` and load it: True when it loaded, False when it was
    refused with an InputError; anything else (another exception, code that ran) propagates or asserts."""
    from elbits.errors import InputError

    path = folder / _NAMES[loader]
    path.write_bytes(data)
    marker = folder / MARKER_NAME
    try:
        LOADERS[loader](path)
        ok = True
    except InputError as e:
        msg = str(e)
        assert "\n" not in msg and str(path) in msg and "weights_only" not in msg, msg
        ok = False
    finally:
        path.unlink()
    assert not marker.exists(), f"loading {loader} ran code from the file"
    return ok


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random byte-level mutation: flipped bits, overwritten or zeroed runs, a cut, an insertion."""
    b = bytearray(data)
    n = len(b)
    kind = rng.integers(6)
    if n == 0:
        return bytes(rng.integers(0, 256, 8, dtype=np.uint8))
    if kind == 0:  # flip 1-4 bits
        for _ in range(int(rng.integers(1, 5))):
            i = int(rng.integers(n))
            b[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # overwrite a run with random bytes
        i = int(rng.integers(n))
        run = rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8).tobytes()
        b[i : i + len(run)] = run
    elif kind == 2:  # interesting values over a 4-byte field (sizes, offsets, lengths)
        i = int(rng.integers(n))
        b[i : i + 4] = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80"][
            int(rng.integers(4))
        ]
    elif kind == 3:  # truncate
        b = b[: int(rng.integers(n))]
    elif kind == 4:  # insert random bytes
        i = int(rng.integers(n))
        b[i:i] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
    else:  # zero a run
        i = int(rng.integers(n))
        b[i : i + int(rng.integers(1, 64))] = bytes(min(64, n - i))
    return bytes(b)


def replay(folder: Path, per_seed: int = 20, seed: int = 0) -> Iterator[tuple[str, int, bool]]:
    """``(loader, mutation number, loaded)`` for ``per_seed`` seeded mutations of every seed file."""
    marker = str(folder / MARKER_NAME)
    rng = np.random.default_rng(seed)
    for loader, files in seeds(marker).items():
        for k, data in enumerate(files):
            for j in range(per_seed):
                yield loader, k * per_seed + j, check(loader, mutate(data, rng), folder)


def main(argv: list[str]) -> None:
    if argv[1:2] == ["--write-corpus"]:
        out = Path(argv[2])
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            for i, (loader, files) in enumerate(seeds(str(Path(tmp) / MARKER_NAME)).items()):
                for k, data in enumerate(files):
                    (out / f"{loader}-{k}").write_bytes(bytes([i]) + data)
        return
    import atheris  # only the fuzzing run needs it

    with atheris.instrument_imports(include=["elbits"]):  # coverage of elbits' own parsing code
        import elbits.data.dsprites
        import elbits.evaluate
        import elbits.train.checkpoint  # noqa: F401
    names = list(LOADERS)
    work = Path(tempfile.mkdtemp(prefix="elbits-fuzz-"))

    def one_input(data: bytes) -> None:
        if data:
            check(names[data[0] % len(names)], data[1:], work)

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(sys.argv)
