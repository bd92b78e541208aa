"""Colour image data on real pixels: PNG/JPEG folders written with Pillow, the uint8 cache, every bad input,
``.npy`` / ``.npz`` arrays, and the shipped-photograph patches."""

from __future__ import annotations

import io
import os
import pickle
import socket
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from PIL import Image

from elbits.data import ImageFolder, fetch, load_images, photo_names, photo_patches
from elbits.data import images as images_mod
from elbits.errors import InputError, MissingFileError


def picture(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth colour picture with some noise: uint8 [H, W, 3], distinct per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [128 + 100 * np.sin(xx / (7 + c + seed) + yy / (11 + seed) + c) for c in range(3)], axis=-1
    )
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def save(path: Path, arr: np.ndarray, mode: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr)
    if mode is not None:
        im = im.convert(mode)
    im.save(path, **kw)
    return path


def celeba_crop(path: Path, size: int) -> np.ndarray:
    """The DCGAN-style CelebA recipe done by hand: the centre 148 x 148 of a 178 x 218 image, resized."""
    with Image.open(path) as im:
        assert im.size == (178, 218)
        out = im.convert("RGB").crop((15, 35, 163, 183)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(out).transpose(2, 0, 1)


@pytest.fixture
def celeba(tmp_path: Path) -> Path:
    """CelebA's layout: img_align_celeba/000001.jpg ... (178 x 218 JPEGs) beside its text files."""
    root = tmp_path / "celeba"
    for i in reversed(range(1, 7)):  # written in reverse: the order read must not be the creation order
        save(root / "img_align_celeba" / f"{i:06d}.jpg", picture(218, 178, i), quality=90)
    (root / "list_attr_celeba.txt").write_text("6\n")
    return root


def test_celeba64_matches_crop_148_then_resize(celeba: Path, tmp_path: Path) -> None:
    ds = ImageFolder(celeba, cache_dir=tmp_path / "cache")
    assert len(ds) == 6 and ds.shape == (3, 64, 64)
    assert ds.images.dtype == np.uint8 and ds.images.shape == (6, 3, 64, 64)
    files = sorted((celeba / "img_align_celeba").glob("*.jpg"))
    for i, f in enumerate(files):
        np.testing.assert_array_equal(ds.images[i], celeba_crop(f, 64))
        item = ds[i]
        assert item.dtype == torch.uint8 and item.shape == (3, 64, 64)
        np.testing.assert_array_equal(item.numpy(), celeba_crop(f, 64))
    assert ds.report.files == 6 and ds.report.skipped == 1  # the attribute list
    assert ds.report.modes == {"RGB": 6} and ds.report.converted == {}
    # the image folder itself works as well
    inner = load_images(celeba / "img_align_celeba", cache_dir=False)
    np.testing.assert_array_equal(inner.numpy(), ds.images)


def test_celeba32_and_size(celeba: Path) -> None:
    files = sorted((celeba / "img_align_celeba").glob("*.jpg"))
    for kw in ({"preprocess": "celeba32"}, {"preprocess": "celeba64", "size": 32}):
        x = load_images(celeba, cache_dir=False, **kw)
        assert x.shape == (6, 3, 32, 32) and x.dtype == torch.uint8
        np.testing.assert_array_equal(x[3].numpy(), celeba_crop(files[3], 32))


def test_resize_and_none(tmp_path: Path) -> None:
    pic = picture(50, 70, 3)
    save(tmp_path / "a.png", pic)
    x = load_images(tmp_path / "a.png", preprocess="resize", size=32)
    want = np.asarray(Image.fromarray(pic).resize((32, 32), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    assert x.shape == (1, 3, 32, 32)
    np.testing.assert_array_equal(x[0].numpy(), want)
    # PNG is lossless: "none" gives back the very pixels written
    x = load_images(tmp_path / "a.png", preprocess="none")
    np.testing.assert_array_equal(x[0].numpy(), pic.transpose(2, 0, 1))
    with pytest.raises(InputError, match="preprocess 'none'"):
        load_images(tmp_path / "a.png", preprocess="none", size=32)


def test_none_needs_one_size(tmp_path: Path) -> None:
    save(tmp_path / "d" / "a.png", picture(32, 32, 1))
    save(tmp_path / "d" / "b.png", picture(32, 40, 2))
    with pytest.raises(InputError, match=r"b\.png: 40x32 px, but the first image is 32x32"):
        load_images(tmp_path / "d", preprocess="none", cache_dir=False)
    x = load_images(tmp_path / "d", preprocess="resize", size=16, cache_dir=False)
    assert x.shape == (2, 3, 16, 16)


def test_modes_are_converted_and_reported(tmp_path: Path) -> None:
    d = tmp_path / "mixed"
    pic = picture(40, 40, 5)
    save(d / "1_rgb.png", pic)
    save(d / "2_grey.png", pic, "L")
    rgba = np.concatenate([pic, np.full((40, 40, 1), 7, np.uint8)], axis=-1)
    save(d / "3_rgba.png", rgba)
    save(d / "4_palette.png", pic, "P")
    grey16 = (np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).astype(np.uint16)
    save(d / "5_grey16.png", grey16)
    cmyk = Image.fromarray(pic).convert("CMYK")
    cmyk.save(d / "6_cmyk.jpg", quality=95)
    save(d / "7_greyalpha.png", pic, "LA")
    with Image.open(d / "5_grey16.png") as im:
        assert im.mode.startswith("I")  # Pillow reads a 16-bit PNG as 16-bit levels
    ds = ImageFolder(d, preprocess="none", cache_dir=tmp_path / "cache")
    assert ds.images.shape == (7, 3, 40, 40)
    r = ds.report
    assert r.modes["RGB"] == 1 and sum(r.modes.values()) == 7
    assert set(r.converted) == {"L", "RGBA", "P", "CMYK", "LA", *[m for m in r.modes if m.startswith("I")]}
    assert "converted to RGB" in r.summary()
    x = ds.images
    np.testing.assert_array_equal(x[0], pic.transpose(2, 0, 1))
    grey = np.asarray(Image.fromarray(pic).convert("L"))
    for c in range(3):
        np.testing.assert_array_equal(x[1, c], grey)
        np.testing.assert_array_equal(x[4, c], (grey16 >> 8).astype(np.uint8))  # the high byte, not clipped
        np.testing.assert_array_equal(x[6, c], grey)
    np.testing.assert_array_equal(x[2], pic.transpose(2, 0, 1))  # alpha dropped
    with Image.open(d / "4_palette.png") as im:
        np.testing.assert_array_equal(x[3], np.asarray(im.convert("RGB")).transpose(2, 0, 1))
    with Image.open(d / "6_cmyk.jpg") as im:
        assert im.mode == "CMYK"
        np.testing.assert_array_equal(x[5], np.asarray(im.convert("RGB")).transpose(2, 0, 1))
    # the counts survive the cache
    again = ImageFolder(d, preprocess="none", cache_dir=tmp_path / "cache")
    assert again.report.from_cache and again.report.modes == r.modes


def test_mode_conversion_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    save(tmp_path / "g.png", picture(20, 20, 1), "L")
    save(tmp_path / "c.png", picture(20, 20, 2))
    with caplog.at_level("INFO", logger="elbits.data.images"):
        load_images(tmp_path, preprocess="none", cache_dir=False)
    assert any("converted to RGB: 1 L" in rec.getMessage() for rec in caplog.records)


def test_deterministic_and_sorted(tmp_path: Path) -> None:
    d = tmp_path / "d"
    names = ["b/2.png", "a/10.png", "a/9.png", "c.png", "B.png"]
    for k, n in enumerate(names):
        save(d / n, np.full((8, 8, 3), k, np.uint8))
    x = load_images(d, preprocess="none", cache_dir=False)
    y = load_images(d, preprocess="none", cache_dir=False)
    assert torch.equal(x, y)
    order = sorted(names, key=lambda n: Path(n).parts)
    assert x[:, 0, 0, 0].tolist() == [names.index(n) for n in order]
    # limit: the first images of that order
    z = load_images(d, preprocess="none", cache_dir=False, limit=2)
    assert torch.equal(z, x[:2])


def test_cache_second_load_does_not_decode(celeba: Path, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    first = ImageFolder(celeba, cache_dir=cache)
    assert not first.report.from_cache
    path = Path(first.report.cache)
    assert path.parent == cache and path.suffix == ".npy"
    assert sorted(p.name for p in cache.iterdir()) == sorted([path.name, path.with_suffix(".json").name])
    want = np.array(first.images)

    def no_decoding(*a, **k):
        raise AssertionError("decoded an image although the cache exists")

    monkeypatch.setattr(PIL.Image, "open", no_decoding)
    second = ImageFolder(celeba, cache_dir=cache)
    assert second.report.from_cache and second.report.cache == str(path)
    assert isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(second.images, want)
    # another preprocessing is another cache
    with pytest.raises(InputError, match="decoded an image although"):
        ImageFolder(celeba, cache_dir=cache, size=32)
    monkeypatch.undo()
    # a changed file makes a new cache
    f = celeba / "img_align_celeba" / "000002.jpg"
    save(f, picture(218, 178, 99), quality=90)
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    third = ImageFolder(celeba, cache_dir=cache)
    assert not third.report.from_cache and third.report.cache != str(path)
    np.testing.assert_array_equal(third.images[1], celeba_crop(f, 64))
    np.testing.assert_array_equal(third.images[0], want[0])
    # a tensor made from the cache can be written without touching the file
    t = load_images(celeba, cache_dir=cache)
    t[0] = 0
    assert np.array_equal(ImageFolder(celeba, cache_dir=cache).images[0], third.images[0])


def test_default_cache_dir(celeba: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    ds = ImageFolder(celeba)
    assert Path(ds.report.cache).parent == tmp_path / "xdg" / "elbits" / "images"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert images_mod.default_cache_dir() == tmp_path / "home" / ".cache" / "elbits" / "images"


def test_unwritable_cache_dir(celeba: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="cannot write the image cache"):
        ImageFolder(celeba, cache_dir=blocker / "cache")


def test_failed_decode_leaves_no_cache(celeba: Path, tmp_path: Path) -> None:
    (celeba / "img_align_celeba" / "000004.jpg").write_bytes(b"\xff\xd8\xff garbage")
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match="000004.jpg"):
        ImageFolder(celeba, cache_dir=cache)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_pickled_dataset_reopens_its_cache(celeba: Path, tmp_path: Path) -> None:
    ds = ImageFolder(celeba, cache_dir=tmp_path / "cache")
    blob = pickle.dumps(ds)
    assert len(blob) < ds.images.nbytes // 4  # a worker process gets the cache's name, not the pixels
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.images, ds.images)


def test_fetch_scales_image_folders(celeba: Path, tmp_path: Path) -> None:
    from elbits import train

    assert train.fetch is fetch  # training reads batches through elbits.data
    ds = ImageFolder(celeba, cache_dir=tmp_path / "cache")
    x = fetch(ds, [4, 0, 4])
    assert x.dtype == torch.float32 and x.shape == (3, 3, 64, 64)
    torch.testing.assert_close(x, torch.from_numpy(np.array(ds.images[[4, 0, 4]])).float() / 255.0)
    train.check_images(x)


# --- bad input: one clear InputError each, naming the file ----------------------------------------------


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height RGB pixels (the data is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="no file or folder"):
        load_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no PNG/JPG/JPEG files .*\(0 other files\)"):
        load_images(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("x")
    (tmp_path / "text" / ".hidden.png").write_bytes(b"AppleDouble")
    with pytest.raises(InputError, match=r"\(2 other files\)"):
        load_images(tmp_path / "text")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("fake.png", b"this is a text file, not a picture", "not a PNG or JPEG image"),
        ("fake.jpg", b"", "not a PNG or JPEG image"),
        ("anim.png", b"GIF89a" + b"\0" * 40, "not a PNG or JPEG image"),
    ],
)
def test_not_an_image(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    save(tmp_path / "ok.png", picture(160, 160, 1))
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=f"{name}: {message}"):
        load_images(tmp_path, cache_dir=False)


def test_truncated_jpeg_and_png(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(picture(218, 178, 1)).save(buf, "JPEG", quality=90)
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError, match=r"cut\.jpg: cannot be read as an image \(.*truncated"):
        load_images(tmp_path / "cut.jpg")
    buf = io.BytesIO()
    Image.fromarray(picture(200, 200, 2)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[:-300])
    with pytest.raises(InputError, match=r"cut\.png: cannot be read as an image"):
        load_images(tmp_path / "cut.png")


def test_decompression_bomb(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "bomb.png").write_bytes(png_declaring(40000, 40000))  # 1.6 G px, in 100 bytes
    with pytest.raises(InputError, match=r"bomb\.png: refused by Pillow's decompression-bomb check"):
        load_images(tmp_path / "bomb.png")
    # over the limit but under twice it: Pillow only warns; elbits refuses as well
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 10_000)
    save(tmp_path / "big.png", picture(120, 120, 1))
    with pytest.warns(PIL.Image.DecompressionBombWarning), pytest.raises(InputError, match="big.png: 120x1"):
        load_images(tmp_path / "big.png")


def test_smaller_than_the_crop(tmp_path: Path) -> None:
    save(tmp_path / "d" / "big.jpg", picture(218, 178, 1))
    save(tmp_path / "d" / "small.jpg", picture(100, 178, 2))
    with pytest.raises(InputError, match=r"small\.jpg: 178x100 px is smaller than the 148x148 centre crop"):
        load_images(tmp_path / "d", cache_dir=False)


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links")
def test_symlink_loops(tmp_path: Path) -> None:
    d = tmp_path / "d"
    save(d / "a" / "x.png", picture(160, 160, 1))
    (d / "a" / "back").symlink_to(d)
    with pytest.raises(InputError, match="a folder already read"):
        load_images(d, cache_dir=False)
    (d / "a" / "back").unlink()
    (d / "a" / "self.png").symlink_to(d / "a" / "self.png")
    with pytest.raises(InputError, match=r"self\.png: cannot be read"):
        load_images(d, cache_dir=False)
    (d / "a" / "self.png").unlink()
    (d / "a" / "alias.png").symlink_to(d / "a" / "x.png")  # a link to an image is read like the image
    x = load_images(d, cache_dir=False)
    assert x.shape == (2, 3, 64, 64) and torch.equal(x[0], x[1])


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"preprocess": "celeba"}, "preprocess 'celeba' is unknown"),
        ({"size": 0}, "size 0"),
        ({"size": 2.5}, "size 2.5"),
        ({"limit": 0}, "limit 0"),
        ({"limit": True}, "limit True"),
    ],
)
def test_bad_settings(celeba: Path, kw: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_images(celeba, cache_dir=False, **kw)


# --- arrays ---------------------------------------------------------------------------------------------


def test_npy_layouts(tmp_path: Path) -> None:
    nhwc = np.stack([picture(12, 10, s) for s in range(4)])
    np.save(tmp_path / "nhwc.npy", nhwc)
    np.save(tmp_path / "nchw.npy", nhwc.transpose(0, 3, 1, 2))
    np.save(tmp_path / "grey.npy", nhwc[..., 0])
    np.save(tmp_path / "grey4.npy", nhwc[..., :1])
    want = torch.from_numpy(nhwc.transpose(0, 3, 1, 2).copy())
    for name in ("nhwc", "nchw"):
        x = load_images(tmp_path / f"{name}.npy")
        assert x.dtype == torch.uint8 and torch.equal(x, want)
    for name in ("grey", "grey4"):
        x = load_images(tmp_path / f"{name}.npy")
        assert x.shape == (4, 1, 12, 10) and torch.equal(x[:, 0], want[:, 0])
    assert torch.equal(load_images(tmp_path / "nhwc.npy", limit=2), want[:2])
    # a named preprocessing applies per image and keeps C
    x = load_images(tmp_path / "nhwc.npy", preprocess="resize", size=8, cache_dir=tmp_path / "c")
    want8 = np.asarray(Image.fromarray(nhwc[2]).resize((8, 8), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    assert x.shape == (4, 3, 8, 8) and np.array_equal(x[2].numpy(), want8)
    g = ImageFolder(tmp_path / "grey.npy", preprocess="resize", size=8, cache_dir=tmp_path / "c")
    assert g.images.shape == (4, 1, 8, 8) and g.report.cache is not None
    x[0] = 0  # writable, and the file is left as it was
    assert np.array_equal(np.load(tmp_path / "nhwc.npy"), nhwc)


def test_npz_members(tmp_path: Path) -> None:
    imgs = np.stack([picture(8, 8, s) for s in range(3)])
    np.savez(tmp_path / "one.npz", imgs)
    np.savez_compressed(tmp_path / "two.npz", images=imgs, labels=np.arange(3))
    np.savez(tmp_path / "both.npz", a=imgs, b=imgs[:2])
    want = torch.from_numpy(imgs.transpose(0, 3, 1, 2).copy())
    assert torch.equal(load_images(tmp_path / "one.npz"), want)
    assert torch.equal(load_images(tmp_path / "two.npz"), want)  # the one uint8 image array
    assert torch.equal(load_images(tmp_path / "both.npz", member="b"), want[:2])
    with pytest.raises(InputError, match=r"holds 2 arrays \['a', 'b'\], 2 of them uint8 images; name"):
        load_images(tmp_path / "both.npz")
    with pytest.raises(InputError, match="no member 'c'"):
        load_images(tmp_path / "both.npz", member="c")


@pytest.mark.parametrize(
    "arr, message",
    [
        (np.zeros((2, 8, 8, 3), np.float32), "dtype float32; expected uint8"),
        (np.zeros((2, 8, 8, 3), np.uint16), "dtype uint16; expected uint8"),
        (np.zeros((8, 8), np.uint8), "rank 2"),
        (np.zeros((1, 2, 8, 8, 3), np.uint8), "rank 5"),
        (np.zeros((2, 8, 8, 4), np.uint8), "neither axis 1 nor the last axis"),
        (np.zeros((2, 3, 8, 3), np.uint8), "both axis 1 and the last axis"),
        (np.zeros((0, 8, 8, 3), np.uint8), "holds no images"),
    ],
)
def test_bad_arrays(tmp_path: Path, arr: np.ndarray, message: str) -> None:
    np.save(tmp_path / "x.npy", arr)
    with pytest.raises(InputError, match=message):
        load_images(tmp_path / "x.npy")
    np.savez(tmp_path / "x.npz", images=arr)
    with pytest.raises(InputError, match=message):
        load_images(tmp_path / "x.npz")


def test_pickled_arrays_are_refused(tmp_path: Path) -> None:
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = np.zeros((8, 8, 3), np.uint8), "payload"
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    with pytest.raises(InputError, match="holds Python objects"):
        load_images(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", images=obj)
    with pytest.raises(InputError, match="holds Python objects"):
        load_images(tmp_path / "obj.npz", member="images")
    (tmp_path / "pickle.npy").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(InputError, match="not a .npy array"):
        load_images(tmp_path / "pickle.npy")


# --- photo patches --------------------------------------------------------------------------------------


def test_photo_patches() -> None:
    data = pytest.importorskip("skimage.data")
    names = photo_names()
    assert names[:5] == ("astronaut", "chelsea", "coffee", "motorcycle", "rocket")
    p32, p64 = photo_patches(32), photo_patches(64)
    assert p32.shape == (2296, 3, 32, 32) and p64.shape == (542, 3, 64, 64)
    assert p32.dtype == torch.uint8 and p64.dtype == torch.uint8
    assert torch.equal(p32, photo_patches(32))
    assert float(p32.float().std()) > 30
    flat = (p32.float().std(dim=(1, 2, 3)) < 1).sum()  # a few patches of the astronaut's black background
    assert int(flat) < 0.01 * len(p32)
    assert len(torch.unique(p32.flatten(1), dim=0)) >= 0.99 * len(p32)
    a = data.astronaut()
    np.testing.assert_array_equal(p32[1].numpy(), a[:32, 32:64].transpose(2, 0, 1))  # row by row
    np.testing.assert_array_equal(p64[8].numpy(), a[64:128, :64].transpose(2, 0, 1))
    few = photo_patches(32, limit=10)
    assert few.shape == (10, 3, 32, 32)
    assert torch.equal(few, p32[torch.arange(10) * 2296 // 10])
    assert len(photo_patches(32, stride=16)) > 3 * len(p32)
    with pytest.raises(InputError, match="size 0"):
        photo_patches(0)
    with pytest.raises(InputError, match="limit -1"):
        photo_patches(32, limit=-1)
    with pytest.raises(InputError, match="use a larger stride"):
        photo_patches(64, stride=1)


def test_photo_patches_need_no_network(monkeypatch) -> None:
    pytest.importorskip("skimage.data")
    images_photos = sys.modules["elbits.data.photos"]
    images_photos._photo.cache_clear()

    def refuse(*a, **k):
        raise AssertionError("the photo patches tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert photo_patches(32, limit=4).shape == (4, 3, 32, 32)


def test_photo_patches_without_scikit_image(monkeypatch) -> None:
    images_photos = sys.modules["elbits.data.photos"]
    images_photos._photo.cache_clear()
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(InputError, match=r"pip install 'elbits\[colour\]'"):
        photo_patches(32)
    images_photos._photo.cache_clear()
