"""Classical lossless codecs on the same images, for comparison with the bits-back codec.

Per-file codecs (PNG through Pillow; WebP lossless and JPEG-XL lossless through ``imagecodecs``) code
every image as its own file and so pay a header per image; whole-set codecs (lzma, bz2, zstd) code all
images as one byte string and share what the images have in common. Binary images are given to every
codec in its 1-bit form (PNG mode "1", bit-packed bytes for the whole-set codecs) and as 8-bit grey
where a codec has no 1-bit mode. Every figure is verified by decoding it again.
"""

from __future__ import annotations

import bz2
import io
import lzma
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

imagecodecs: Any
try:
    import imagecodecs
except ImportError:  # an optional extra: elbits[compare]
    imagecodecs = None


def _verify(ok: bool, codec: str) -> None:
    if not ok:
        raise RuntimeError(f"{codec} did not decode to the images it coded")


@dataclass(frozen=True)
class Baseline:
    """One codec's size for a set: ``bits`` in all, ``per_file`` when each image is its own file."""

    name: str
    bits: float
    per_file: bool

    def bits_per_image(self, n: int) -> float:
        return self.bits / n


def _png(img: np.ndarray, binary: bool) -> bytes:
    # img: [H, W, C] uint8 levels
    if binary:
        pil = Image.fromarray((img[..., 0] * 255).astype(np.uint8)).convert("1")
    else:
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    out = buf.getvalue()
    back = np.asarray(Image.open(io.BytesIO(out)).convert("L" if img.shape[-1] == 1 else "RGB"))
    want = img[..., 0] * (255 if binary else 1) if img.shape[-1] == 1 else img
    _verify(np.array_equal(back, want), "PNG")
    return out


def _grey_or_rgb(img: np.ndarray, binary: bool) -> np.ndarray:
    x = img * 255 if binary else img
    return x[..., 0] if x.shape[-1] == 1 else x


def _webp(img: np.ndarray, binary: bool) -> bytes:
    x = _grey_or_rgb(img, binary)
    rgb = np.repeat(x[..., None], 3, axis=-1) if x.ndim == 2 else x
    out = imagecodecs.webp_encode(np.ascontiguousarray(rgb), lossless=True, level=100)
    _verify(np.array_equal(imagecodecs.webp_decode(out)[..., :3], rgb), "WebP")
    return bytes(out)


def _jpegxl(img: np.ndarray, binary: bool) -> bytes:
    x = np.ascontiguousarray(_grey_or_rgb(img, binary))
    out = imagecodecs.jpegxl_encode(x, lossless=True, effort=9)
    _verify(np.array_equal(imagecodecs.jpegxl_decode(out), x), "JPEG-XL")
    return bytes(out)


def _whole(data: bytes, encode: Callable[[bytes], bytes], decode: Callable[[bytes], bytes]) -> int:
    out = encode(data)
    _verify(decode(out) == data, "a whole-set codec")
    return len(out)


def baselines(images: np.ndarray, binary: bool) -> list[Baseline]:
    """The sizes of ``images`` (uint8 levels ``[N, C, H, W]``; ``binary``: levels 0/1) under every codec
    available here. WebP and JPEG-XL need the ``imagecodecs`` package (``pip install elbits[compare]``)."""
    hwc = np.ascontiguousarray(np.moveaxis(np.asarray(images, dtype=np.uint8), 1, -1))
    per_file: dict[str, Callable[[np.ndarray, bool], bytes]] = {"PNG (Pillow)": _png}
    if imagecodecs is not None:
        per_file.update({"WebP lossless": _webp, "JPEG-XL lossless": _jpegxl})
    out = [
        Baseline(name, 8.0 * sum(len(f(img, binary)) for img in hwc), True) for name, f in per_file.items()
    ]
    raw = (np.packbits(hwc.reshape(len(hwc), -1), axis=1) if binary else hwc).tobytes()
    whole: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
        "lzma (whole set)": (lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
        "bz2 (whole set)": (lambda d: bz2.compress(d, 9), bz2.decompress),
    }
    if imagecodecs is not None:
        whole["zstd (whole set)"] = (
            lambda d: bytes(imagecodecs.zstd_encode(d, level=19)),
            lambda d: bytes(imagecodecs.zstd_decode(d)),
        )
    out += [Baseline(name, 8.0 * _whole(raw, enc, dec), False) for name, (enc, dec) in whole.items()]
    return out
