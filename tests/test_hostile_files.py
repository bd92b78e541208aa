"""Hostile files: loading never runs code, corrupt or foreign files are refused with one line naming them.

Families: dSprites npz (pickles, non-zip files, wrong dtypes, values, shapes, members, CRCs), checkpoints
(flipped bytes, truncation, foreign files, wrong state_dicts), disentangling-vae model.pt and specs.json,
``--images`` files (.npy and the PNG grid), and a seeded replay of mutated files through every loader.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fuzz_loaders import MARKER_NAME, RunsCode, replay
from reference_files import REAL_PNG, VAE_DIR, VAE_MODEL

from elbits.data import dsprites as ds
from elbits.errors import InputError, MissingFileError
from elbits.evaluate import evaluate_checkpoint, load_images, load_model
from elbits.models import BurgessVAE, load_disentangling_vae
from elbits.train import TrainConfig, load_checkpoint, save_checkpoint, train
from elbits.train.data import build_dataset

needs_vae = pytest.mark.skipif(not VAE_MODEL.is_file(), reason="shared disentangling-vae checkpoint absent")
needs_png = pytest.mark.skipif(not REAL_PNG.is_file(), reason="shared reference PNG absent")


def refused(call, path, match: str | None = None):
    """Run ``call`` expecting an InputError whose one-line message names ``path`` (and matches ``match``)."""
    with pytest.raises(InputError, match=match) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg, msg
    assert "weights_only" not in msg and "Traceback" not in msg, msg
    return msg


@pytest.fixture
def marker(tmp_path):
    """The file a hostile pickle creates when it is unpickled; asserted absent after each test."""
    m = tmp_path / MARKER_NAME
    yield m
    assert not m.exists(), "a loader ran code from a file"


def _evil(marker: Path) -> np.ndarray:
    return np.array([RunsCode(str(marker))], dtype=object)


def _good_arrays(n: int = 8):
    classes = ds.index_to_classes(np.arange(0, ds.NUM_IMAGES, ds.NUM_IMAGES // n)[:n])
    return ds.render(classes).numpy(), classes


def _npz(path: Path, compressed: bool = False, **members) -> Path:
    imgs, classes = _good_arrays()
    members = {"imgs": imgs, "latents_classes": classes, **members}
    with path.open("wb") as f:
        (np.savez_compressed if compressed else np.savez)(
            f, **{k: v for k, v in members.items() if v is not None}
        )
    return path


# --- dSprites npz: pickles never run
# --------------------------------------------------------------------------


def test_crafted_pickle_really_runs_code_under_numpys_unsafe_load(tmp_path, marker):
    # The hostile files below are real: numpy's allow_pickle=True load runs them.
    path = _npz(tmp_path / "evil.npz", latents_classes=_evil(marker))
    with np.load(path, allow_pickle=True) as z:
        z["latents_classes"]
    assert marker.exists()
    marker.unlink()


def test_pickled_metadata_member_is_never_unpickled(tmp_path, marker):
    path = _npz(tmp_path / "d.npz", metadata=_evil(marker))
    data = ds.NpzDSprites(path)
    assert data.metadata is ds.METADATA and len(data) == 8


@pytest.mark.parametrize("member", ["imgs", "latents_classes"])
@pytest.mark.parametrize("compressed", [False, True])
def test_object_array_member_refused(tmp_path, marker, member, compressed):
    path = _npz(tmp_path / "d.npz", compressed, **{member: _evil(marker)})
    refused(lambda: ds.NpzDSprites(path), path, "Python objects")


def test_raw_pickle_as_member_refused(tmp_path, marker):
    imgs, _ = _good_arrays()
    buf = io.BytesIO()
    np.save(buf, imgs)
    path = tmp_path / "d.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("imgs.npy", buf.getvalue())
        zf.writestr("latents_classes.npy", pickle.dumps(RunsCode(str(marker))))
    refused(lambda: ds.NpzDSprites(path), path, "not a .npy")


def test_plain_pickle_renamed_npz_refused_by_every_entry_point(tmp_path, marker):
    path = tmp_path / "dsprites.npz"
    path.write_bytes(pickle.dumps(RunsCode(str(marker))))
    refused(lambda: ds.NpzDSprites(path), path, "pickle")
    refused(lambda: build_dataset(str(path)), path, "pickle")  # elbits train --npz


def test_entropy_cli_refuses_pickle_npz(tmp_path, marker, capsys):
    from elbits.cli import main

    path = tmp_path / "dsprites.npz"
    path.write_bytes(pickle.dumps(RunsCode(str(marker))))
    try:
        rc = main(["entropy", "dsprites", "--npz", str(path), "--quiet"])
    except SystemExit as e:
        rc = e.code
    except InputError:
        rc = 2
    assert rc == 2


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00" * 100, b"PK\x03\x04 cut short", b"\x93NUMPY\x01\x00v\x00{'descr'"],
    ids=["empty", "zeros", "truncated-zip", "npy"],
)
def test_non_zip_npz_refused(tmp_path, content):
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    refused(lambda: ds.NpzDSprites(path), path, "not an .npz")


def test_truncated_npz_refused(tmp_path):
    path = _npz(tmp_path / "d.npz")
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        refused(lambda: ds.NpzDSprites(path), path)


def test_missing_npz_is_missing_file_error(tmp_path):
    with pytest.raises(MissingFileError, match="never downloads"):
        ds.NpzDSprites(tmp_path / "absent.npz")


# --- dSprites npz: dtypes, values, shapes, members
# ---------------------------------------------------------------


@pytest.mark.parametrize("member", ["imgs", "latents_classes"])
def test_missing_member_refused(tmp_path, member):
    path = _npz(tmp_path / "d.npz", **{member: None})
    refused(lambda: ds.NpzDSprites(path), path, f"no {member}.npy")


@pytest.mark.parametrize(
    "imgs",
    [
        pytest.param(lambda im: im.astype(np.float32) * 0.7, id="float-0.7"),
        pytest.param(lambda im: np.where(im > 0, -1, 0).astype(np.int8), id="int8-negative"),
        pytest.param(lambda im: im * 255, id="uint8-255"),
        pytest.param(lambda im: np.where(im > 0, np.nan, 0.0), id="float-nan"),
    ],
)
@pytest.mark.parametrize("compressed", [False, True])
def test_non_binary_pixels_refused(tmp_path, imgs, compressed):
    path = _npz(tmp_path / "d.npz", compressed, imgs=imgs(_good_arrays()[0]))
    refused(lambda: ds.NpzDSprites(path), path, "expected every pixel 0 or 1")


@pytest.mark.parametrize("dtype", [np.bool_, np.int16, np.float32])
def test_binary_pixels_of_other_dtypes_read_exactly(tmp_path, dtype):
    imgs = _good_arrays()[0]
    path = _npz(tmp_path / "d.npz", imgs=imgs.astype(dtype))
    assert torch.equal(ds.NpzDSprites(path).images(np.arange(8)), torch.from_numpy(imgs))


@pytest.mark.parametrize(
    "imgs",
    [
        pytest.param(np.zeros((8, 32, 32), np.uint8), id="32x32"),
        pytest.param(np.zeros((8, 64 * 64), np.uint8), id="flat"),
        pytest.param(np.zeros((8, 1, 64, 64), np.uint8), id="4d"),
        pytest.param(np.zeros((0, 64, 64), np.uint8), id="empty"),
        pytest.param(np.array(["a"] * 8), id="strings"),
        pytest.param(np.zeros((8, 64, 64), np.complex64), id="complex"),
    ],
)
def test_wrong_image_shape_or_dtype_refused(tmp_path, imgs):
    classes = _good_arrays()[1][: len(imgs)]
    path = _npz(tmp_path / "d.npz", imgs=imgs, latents_classes=classes)
    refused(lambda: ds.NpzDSprites(path), path, "imgs")


@pytest.mark.parametrize(
    "classes",
    [
        pytest.param(lambda c: c[:5], id="fewer-rows"),
        pytest.param(lambda c: np.concatenate([c, c]), id="more-rows"),
        pytest.param(lambda c: c[:, :5], id="five-columns"),
        pytest.param(lambda c: c.astype(np.float64), id="float"),
        pytest.param(lambda c: c + np.array([0, 0, 0, 0, 0, 32]), id="posY-32"),
        pytest.param(lambda c: c - 1, id="negative"),
    ],
)
def test_inconsistent_latents_classes_refused(tmp_path, classes):
    path = _npz(tmp_path / "d.npz", latents_classes=classes(_good_arrays()[1]))
    refused(lambda: ds.NpzDSprites(path), path, "latents_classes")


def _flip_in_member(path: Path, member: str, at: float) -> None:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + int(at * (info.compress_size - 1))] ^= 0x01  # 0 <-> 1: a pixel that still looks binary
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("member", ["imgs.npy", "latents_classes.npy"])
@pytest.mark.parametrize("compressed", [False, True])
def test_flipped_bit_in_member_fails_crc(tmp_path, member, compressed):
    path = _npz(tmp_path / "d.npz", compressed)
    _flip_in_member(path, member, 0.9)
    refused(lambda: ds.NpzDSprites(path), path)


def test_header_promising_more_data_refused(tmp_path):
    imgs, classes = _good_arrays()
    buf = io.BytesIO()
    np.save(buf, imgs)
    raw = buf.getvalue()
    forged = raw.replace(b"(8, 64, 64)", b"(9, 64, 64)")
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as zf:
        zf.writestr("imgs.npy", forged)
        cbuf = io.BytesIO()
        np.save(cbuf, classes)
        zf.writestr("latents_classes.npy", cbuf.getvalue())
    refused(lambda: ds.NpzDSprites(tmp_path / "d.npz"), tmp_path / "d.npz", "truncated")


# --- checkpoints
# ---------------------------------------------------------------------------------------------


def _checkpoint(path: Path, **extra) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(
        path, {"step": 7, "config": {"z_dim": 3}, "model": BurgessVAE(3).state_dict(), **extra}
    )


def test_checkpoint_round_trip(tmp_path):
    p = _checkpoint(tmp_path / "c.pt")
    assert p.read_bytes().startswith(b"elbits checkpoint 2 sha256 ")
    assert load_checkpoint(p, require=("model", "step"))["step"] == 7
    model, info = load_model(p)
    assert info["kind"] == "elbits" and info["z_dim"] == 3 and not model.training


@pytest.mark.parametrize("at", [0.0, 0.3, 0.5, 0.999], ids=["header", "early", "middle", "end"])
def test_checkpoint_flipped_byte_fails_integrity_check(tmp_path, at):
    p = _checkpoint(tmp_path / "c.pt")
    data = bytearray(p.read_bytes())
    i = max(int(at * len(data)), 30)  # 30: inside the hash when at == 0
    data[i] ^= 0x04
    p.write_bytes(bytes(data))
    refused(lambda: load_checkpoint(p, require=("model",)), p)
    refused(lambda: load_model(p), p)


def test_corrupt_checkpoint_evaluate_refuses_before_reporting(tmp_path):
    p = _checkpoint(tmp_path / "c.pt")
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x10
    p.write_bytes(bytes(data))
    refused(lambda: evaluate_checkpoint(p, limit=8, device="cpu"), p, "sha256")


def test_corrupt_checkpoint_resume_writes_nothing(tmp_path):
    tiny = dict(
        train_size=64,
        batch_size=16,
        z_dim=2,
        log_every=1,
        progress=False,
        tensorboard=False,
        eval_at_end=False,
        out_dir=str(tmp_path),
    )
    train(TrainConfig(steps=2, **tiny))
    ck = tmp_path / "checkpoint.pt"
    data = bytearray(ck.read_bytes())
    data[len(data) // 3] ^= 0x01
    ck.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    refused(lambda: train(TrainConfig(steps=4, resume="auto", **tiny)), ck, "sha256")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


@pytest.mark.parametrize(
    "cut", [0, 20, 100, 0.5, -1], ids=["empty", "in-header", "early", "half", "last-byte"]
)
def test_truncated_checkpoint_refused(tmp_path, cut):
    p = _checkpoint(tmp_path / "c.pt")
    data = p.read_bytes()
    p.write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut % len(data)])
    refused(lambda: load_checkpoint(p), p)


def _torch_file(path: Path, obj, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), id="random-bytes"),
        pytest.param(lambda p: _npz(p), id="npz-zip"),
        pytest.param(lambda p: zipfile.ZipFile(p, "w").close(), id="empty-zip"),
        pytest.param(lambda p: _torch_file(p, [torch.zeros(3)]), id="torch-list"),
        pytest.param(lambda p: _torch_file(p, torch.zeros(3)), id="torch-tensor"),
        pytest.param(lambda p: _torch_file(p, {"model": {}}), id="torch-dict-no-format"),
        pytest.param(lambda p: _torch_file(p, {"format": 1, "model": [1, 2]}), id="format1-model-not-dict"),
        pytest.param(lambda p: _torch_file(p, {"format": 1, "model": {}}, legacy=True), id="format1-non-zip"),
        pytest.param(
            lambda p: p.write_bytes(b"elbits checkpoint 2 sha256 " + b"0" * 64 + b"\n"), id="header-only"
        ),
        pytest.param(
            lambda p: p.write_bytes(b"elbits checkpoint 9 sha256 " + b"0" * 64 + b"\n"), id="future-format"
        ),
    ],
)
def test_foreign_file_is_not_a_checkpoint(tmp_path, make):
    p = tmp_path / "checkpoint.pt"
    make(p)
    refused(lambda: load_checkpoint(p), p)


@pytest.mark.parametrize(
    "state",
    [
        pytest.param({"step": -1}, id="negative-step"),
        pytest.param({"step": 1.5}, id="float-step"),
        pytest.param({"world_size": 2, "meters": [{}]}, id="meters-per-rank"),
        pytest.param({"config": [1]}, id="config-list"),
    ],
)
def test_checkpoint_with_wrong_structure_refused(tmp_path, state):
    p = save_checkpoint(tmp_path / "c.pt", {"model": {}, "step": 0, **state})
    refused(lambda: load_checkpoint(p, require=("model",)), p, "checkpoint")


def test_resume_needs_every_training_key(tmp_path):
    p = _checkpoint(tmp_path / "c.pt")
    refused(lambda: load_checkpoint(p), p, "without samples_seen")


def test_format1_checkpoint_still_reads_and_its_crc_is_checked(tmp_path):
    torch.manual_seed(0)
    sd = BurgessVAE(3).state_dict()
    p = _torch_file(tmp_path / "checkpoint.pt", {"format": 1, "step": 4, "config": {}, "model": sd})
    assert load_model(p)[1]["step"] == 4
    data = bytearray(p.read_bytes())
    data[data.find(sd["decoder.lin2.weight"].numpy().tobytes()[:64]) + 1000] ^= 0x01
    p.write_bytes(bytes(data))
    refused(lambda: load_model(p), p, "CRC-32")
    refused(lambda: load_checkpoint(p, require=("model",)), p, "CRC-32")


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_file_with_code_refused(tmp_path, marker, legacy):
    p = _torch_file(tmp_path / "model.pt", {"format": 1, "model": RunsCode(str(marker))}, legacy=legacy)
    refused(lambda: load_model(p), p, "never unpickles")
    refused(lambda: load_disentangling_vae(p), p)


def test_hashed_checkpoint_with_code_refused(tmp_path, marker):
    import hashlib

    buf = io.BytesIO()
    torch.save({"format": 2, "model": RunsCode(str(marker))}, buf)
    payload = buf.getvalue()
    p = tmp_path / "checkpoint.pt"
    p.write_bytes(
        b"elbits checkpoint 2 sha256 " + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    )
    refused(lambda: load_checkpoint(p, require=("model",)), p)


def test_plain_pickle_as_checkpoint_refused(tmp_path, marker):
    p = tmp_path / "checkpoint.pt"
    p.write_bytes(pickle.dumps({"format": 2, "model": RunsCode(str(marker))}))
    refused(lambda: load_checkpoint(p), p, "pickle")
    refused(lambda: load_model(p), p, "pickle")


# --- state_dicts: disentangling-vae model.pt and elbits models
# ----------------------------------------------------


def _sd(**changes):
    torch.manual_seed(0)
    sd = dict(BurgessVAE(3).state_dict())
    for k, v in changes.items():
        if v is None:
            sd.pop(k.replace("__", "."))
        else:
            sd[k.replace("__", ".")] = v(sd.get(k.replace("__", "."))) if callable(v) else v
    return sd


@pytest.mark.parametrize(
    "sd",
    [
        pytest.param(lambda: _sd(encoder__lin2__bias=None), id="missing-key"),
        pytest.param(lambda: _sd(extra__weight=torch.zeros(2)), id="unexpected-key"),
        pytest.param(lambda: _sd(encoder__lin1__weight=lambda t: t[:, :100]), id="wrong-shape"),
        pytest.param(
            lambda: _sd(decoder__lin1__weight=torch.zeros(256, 3, dtype=torch.bool)), id="bool-weight"
        ),
        pytest.param(lambda: _sd(decoder__lin1__weight=torch.zeros(256, 0)), id="z-dim-0"),
        pytest.param(lambda: _sd(encoder__conv1__weight=torch.zeros(32, 4)), id="conv1-2d"),
        pytest.param(lambda: _sd(encoder__lin2__weight=lambda t: t.clone().fill_(float("nan"))), id="nan"),
        pytest.param(lambda: _sd(decoder__lin3__bias=lambda t: t.clone().fill_(float("inf"))), id="inf"),
        pytest.param(lambda: _sd(encoder__lin2__bias=lambda t: t.to_sparse()), id="sparse"),
        pytest.param(lambda: {"a": 1}, id="not-tensors"),
    ],
)
@pytest.mark.parametrize("container", ["disentangling-vae", "elbits"])
def test_state_dict_that_does_not_fit_refused(tmp_path, sd, container):
    state = sd()
    if container == "elbits":
        p = save_checkpoint(tmp_path / "checkpoint.pt", {"model": state, "step": 1, "config": {}})
    else:
        p = _torch_file(tmp_path / "model.pt", state, legacy=True)
        refused(lambda: load_disentangling_vae(p), p)
    refused(lambda: load_model(p), p)


@needs_vae
def test_reference_model_loads_and_flipped_copy_is_refused_or_finite(tmp_path):
    model = load_disentangling_vae(VAE_MODEL)
    assert model.z_dim == 10 and not model.training
    data = VAE_MODEL.read_bytes()
    # A NaN written over a weight: the pre-1.6 file has no checksum, so the values are what is checked.
    w = model.state_dict()["encoder.lin1.weight"][0, :4].numpy().tobytes()
    i = data.find(w)
    assert i > 0
    bad = data[:i] + np.float32(np.nan).tobytes() + data[i + 4 :]
    p = tmp_path / "model.pt"
    p.write_bytes(bad)
    refused(lambda: load_disentangling_vae(p), p, "non-finite")


@needs_vae
@pytest.mark.parametrize("specs", [b"{not json", b"[1, 2]", b"\xff\xfe", b"[" * 100_000])
def test_corrupt_specs_json_refused(tmp_path, specs):
    (tmp_path / "model.pt").write_bytes(VAE_MODEL.read_bytes())
    (tmp_path / "specs.json").write_bytes(specs)
    refused(lambda: load_model(tmp_path), tmp_path / "specs.json", "specs")


@needs_vae
def test_reference_specs_read(tmp_path):
    info = load_model(VAE_DIR)[1]
    assert info["specs"]["latent_dim"] == 10 and json.loads(json.dumps(info["specs"]))


# --- --images files
# ------------------------------------------------------------------------------------------


def _save_npy(path: Path, arr, allow_pickle: bool = False) -> Path:
    with path.open("wb") as f:
        np.save(f, arr, allow_pickle=allow_pickle)
    return path


@pytest.mark.parametrize(
    "arr",
    [
        pytest.param(lambda: np.full((2, 64, 64), 0.7, np.float32), id="float-0.7"),
        pytest.param(lambda: np.full((2, 64, 64), -1, np.int8), id="int8-negative"),
        pytest.param(lambda: np.full((2, 64, 64), 7, np.uint8), id="uint8-7"),
        pytest.param(lambda: np.full((2, 64, 64), np.nan), id="nan"),
        pytest.param(lambda: np.zeros((2, 32, 32), np.uint8), id="32x32"),
        pytest.param(lambda: np.zeros((2, 3, 64, 64), np.uint8), id="3-channels"),
        pytest.param(lambda: np.zeros((0, 64, 64), np.uint8), id="no-images"),
        pytest.param(lambda: np.zeros((64, 64), np.uint8), id="one-2d-image"),
        pytest.param(lambda: np.zeros((2, 64, 64), "U1"), id="strings"),
    ],
)
def test_bad_npy_images_refused(tmp_path, arr):
    p = _save_npy(tmp_path / "x.npy", arr())
    refused(lambda: load_images(p), p)


def test_pickled_npy_images_refused(tmp_path, marker):
    p = _save_npy(tmp_path / "x.npy", _evil(marker), allow_pickle=True)
    refused(lambda: load_images(p), p, "Python objects")
    q = tmp_path / "y.npy"
    q.write_bytes(pickle.dumps(RunsCode(str(marker))))
    refused(lambda: load_images(q), q, "pickle")


@pytest.mark.parametrize("cut", [5, 60, 200], ids=["in-magic", "in-header", "in-data"])
def test_truncated_npy_images_refused(tmp_path, cut):
    p = _save_npy(tmp_path / "x.npy", np.zeros((2, 64, 64), np.uint8))
    p.write_bytes(p.read_bytes()[:cut])
    refused(lambda: load_images(p), p)


def test_npz_as_images_refused(tmp_path):
    p = _npz(tmp_path / "x.npz")
    refused(lambda: load_images(p), p, "not a .npy")


def test_binary_npy_images_of_any_numeric_dtype_accepted(tmp_path):
    x = np.random.default_rng(0).random((3, 1, 64, 64)) > 0.5
    for dtype in (np.bool_, np.uint8, np.int64, np.float32):
        p = _save_npy(tmp_path / "x.npy", x.astype(dtype))
        assert torch.equal(load_images(p), torch.from_numpy(x.astype(np.uint8)))


def _png(path: Path, arr: np.ndarray, fmt: str = "PNG") -> Path:
    from PIL import Image

    Image.fromarray(arr).save(path, format=fmt)
    return path


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda: np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8),
            id="700x700-photo",
        ),
        pytest.param(lambda: np.zeros((10, 10), np.uint8), id="tiny"),
        pytest.param(
            lambda: np.random.default_rng(0).integers(0, 256, (662, 662), dtype=np.uint8), id="662-grey-photo"
        ),
        pytest.param(lambda: np.zeros((662, 662), np.uint8), id="ink-in-padding"),
        pytest.param(lambda: np.full((662, 662), 128, np.uint8), id="mid-grey"),
    ],
)
def test_png_that_is_not_the_grid_refused(tmp_path, make):
    p = _png(tmp_path / "grid.png", make())
    refused(lambda: load_images(p), p, "10x10 grid")


@needs_png
@pytest.mark.parametrize("cut", [100, 0.5], ids=["header", "half"])
def test_truncated_png_refused(tmp_path, cut):
    data = REAL_PNG.read_bytes()
    p = tmp_path / "grid.png"
    p.write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    refused(lambda: load_images(p), p)


def test_jpeg_named_png_refused(tmp_path):
    p = _png(tmp_path / "grid.png", np.full((662, 662), 255, np.uint8), fmt="JPEG")
    refused(lambda: load_images(p), p, "not a .npy array or a PNG")


@needs_png
def test_reference_grid_loads():
    x = load_images(REAL_PNG)
    assert x.shape == (100, 1, 64, 64) and x.dtype == torch.uint8 and int(x.max()) == 1


# --- seeded replay of mutated files (the fuzz target's corpus, without atheris)
# -----------------------------------


def test_mutated_files_load_cleanly_or_are_refused(tmp_path):
    outcomes = list(replay(tmp_path, per_seed=12))
    assert len(outcomes) == 12 * 14
    assert sum(not ok for _, _, ok in outcomes) > 0.8 * len(outcomes)
    assert not (tmp_path / MARKER_NAME).exists()
