"""Throughput of the bits-back codec on 64x64 dSprites, next to PNG and JPEG-XL on the same images.

The public beta = 1 Burgess checkpoint (../shared/reference) codes 512 procedural dSprites images in
random order; each round is one whole encode (or decode) of the set, so images/s = 512 / median. The
last test prints bits-back's speed as ratios to PNG and JPEG-XL encoding of the same images, which hold
up on a shared machine better than images/s do, with the load average. Run:
cd benchmarks && PYTHONPATH=../python ../.venv/bin/python -m pytest -q -p no:cacheprovider \
    test_bench_codec.py --benchmark-columns=median,iqr,rounds -s
Figures: docs/codec.md.
"""

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_files import VAE_DIR, VAE_MODEL  # noqa: E402

from elbits.codec import BitsBackCodec  # noqa: E402

N = 512
IMAGES_PER_S: dict[str, float] = {}

pytestmark = pytest.mark.skipif(not VAE_MODEL.is_file(), reason=f"needs {VAE_MODEL}")


@pytest.fixture(scope="module")
def setting():
    from elbits.data import dsprites as ds
    from elbits.models import load_disentangling_vae

    x = ds.render_index(np.random.default_rng(0).choice(ds.NUM_IMAGES, N, replace=False))[:, None]
    codec = BitsBackCodec(load_disentangling_vae(VAE_DIR), "bernoulli")
    return codec, x, codec.encode(x)


def _report(benchmark, what):
    benchmark.group = "codec on 512 dSprites images"
    benchmark.extra_info["impl"] = what
    benchmark.extra_info["images_per_s"] = IMAGES_PER_S[what] = N / benchmark.stats.stats.median


def test_bitsback_encode(benchmark, setting):
    codec, x, _ = setting
    benchmark.pedantic(codec.encode, args=(x,), rounds=5, warmup_rounds=1)
    _report(benchmark, "bits-back encode")


def test_bitsback_decode(benchmark, setting):
    codec, x, blob = setting
    out = benchmark.pedantic(codec.decode, args=(blob,), rounds=5, warmup_rounds=1)
    assert torch.equal(out, x)
    _report(benchmark, "bits-back decode")


def test_png_encode(benchmark, setting):
    _, x, _ = setting
    imgs = [Image.fromarray(a[0] * 255).convert("1") for a in x.numpy()]

    def run():
        for im in imgs:
            im.save(io.BytesIO(), format="PNG", optimize=True)

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    _report(benchmark, "PNG encode (Pillow, 1-bit)")


def test_jpegxl_encode(benchmark, setting):
    imagecodecs = pytest.importorskip("imagecodecs")
    _, x, _ = setting
    imgs = [np.ascontiguousarray(a[0] * 255) for a in x.numpy()]

    def run():
        for im in imgs:
            imagecodecs.jpegxl_encode(im, lossless=True, effort=9)

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    _report(benchmark, "JPEG-XL lossless encode (effort 9)")


def test_speed_ratios():
    """bits-back encode and decode images/s over PNG's and JPEG-XL's encoding images/s (run last)."""
    codecs = [k for k in IMAGES_PER_S if k.startswith("bits-back")]
    others = [k for k in IMAGES_PER_S if not k.startswith("bits-back")]
    if not codecs or not others:
        pytest.skip("needs the timings above (run the whole file)")
    print(f"\nload average {' '.join(f'{v:.2f}' for v in os.getloadavg())}, {os.cpu_count()} CPUs")
    for k in codecs + others:
        print(f"{k:40s} {IMAGES_PER_S[k]:10.0f} images/s")
    for k in codecs:
        print(f"{k:40s} " + "  ".join(f"{IMAGES_PER_S[k] / IMAGES_PER_S[o]:.2f}x {o}" for o in others))
