"""Procedural dSprites: the exact factor grid, the npz loader, and fidelity to the real data set."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from reference_files import REAL_PNG, VAE_MODEL

from elbits.data import dsprites as ds
from elbits.data import fidelity

needs_png = pytest.mark.skipif(not REAL_PNG.is_file(), reason=f"reference images absent ({REAL_PNG})")
needs_vae = pytest.mark.skipif(
    not (VAE_MODEL.is_file() and REAL_PNG.is_file()), reason="reference checkpoint absent"
)


def test_grid_and_ordering():
    assert ds.NUM_IMAGES == 737280
    assert ds.BASES == (737280, 245760, 40960, 1024, 32, 1)
    idx = np.array([0, 1, 31, 32, 1023, 1024, 40959, 40960, 245759, 737279])
    c = ds.index_to_classes(idx)
    assert (ds.classes_to_index(c) == idx).all()
    assert c[1].tolist() == [0, 0, 0, 0, 0, 1]  # posY varies fastest
    assert c[3].tolist() == [0, 0, 0, 0, 1, 0]
    assert c[-1].tolist() == [0, 2, 5, 39, 31, 31]
    v = ds.classes_to_values(c[-1:])[0]
    assert v.tolist() == pytest.approx([1, 3, 1.0, 2 * math.pi, 1.0, 1.0])
    with pytest.raises(IndexError):
        ds.index_to_classes([737280])


def test_render_binary_deterministic_and_endpoint_duplicates():
    rng = np.random.default_rng(0)
    idx = rng.choice(ds.NUM_IMAGES, 300, replace=False)
    a, b = ds.render_index(idx), ds.render_index(idx, batch=64)
    assert a.dtype == torch.uint8 and a.shape == (300, 64, 64)
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0, 1}
    assert (a.flatten(1).sum(1) > 0).all()
    c = ds.index_to_classes(idx)
    c0, c39 = c.copy(), c.copy()
    c0[:, 3], c39[:, 3] = 0, 39
    assert torch.equal(ds.render(c0), ds.render(c39))


def test_geometry_scale_and_position():
    # Mean area over orientations, so raster steps of one pose average out.
    c = np.array([[0, s, k, o, 15, 15] for s in range(3) for k in (0, 5) for o in range(0, 39, 3)])
    area = ds.render(c).flatten(1).sum(1).double().view(3, 2, -1).mean(2)
    assert torch.allclose(
        area[:, 1] / area[:, 0], torch.full((3,), 4.0, dtype=torch.float64), rtol=0.1
    )  # area ~ scale^2
    # The square's centroid follows CENTRE0 + SPAN * pos (pixel centres at j + 0.5).
    for px, py in [(0, 0), (31, 10), (16, 31)]:
        img = ds.render(np.array([[0, 0, 5, 0, px, py]]))[0].double()
        ys, xs = torch.meshgrid(torch.arange(64.0) + 0.5, torch.arange(64.0) + 0.5, indexing="ij")
        cx, cy = (img * xs).sum() / img.sum(), (img * ys).sum() / img.sum()
        assert float(cx) == pytest.approx(ds.CENTRE0 + ds.SPAN * px / 31, abs=0.5)
        assert float(cy) == pytest.approx(ds.CENTRE0 + ds.SPAN * py / 31, abs=0.5)


def test_procedural_dataset_and_cache():
    idx = np.arange(0, ds.NUM_IMAGES, 9973)
    plain, cached = ds.ProceduralDSprites(idx), ds.ProceduralDSprites(idx, cache=True)
    assert len(plain) == len(idx) == len(cached)
    img, cls = plain[3]
    assert img.shape == (1, 64, 64) and img.dtype == torch.float32
    assert cls.tolist() == ds.index_to_classes(idx[3])[0].tolist()
    assert torch.equal(plain.images(np.arange(len(idx))), cached.images(np.arange(len(idx))))
    loader = torch.utils.data.DataLoader(plain, batch_size=16)
    x, y = next(iter(loader))
    assert x.shape == (16, 1, 64, 64) and y.shape == (16, 6)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_loader_memory_maps(tmp_path, compressed):
    idx = np.arange(0, ds.NUM_IMAGES, 50000)
    classes = ds.index_to_classes(idx)
    imgs = ds.render(classes).numpy()
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    meta = np.array(pickle.loads(pickle.dumps({"description": "test"})), dtype=object)
    save = np.savez_compressed if compressed else np.savez
    save(
        path, imgs=imgs, latents_classes=classes, latents_values=ds.classes_to_values(classes), metadata=meta
    )
    data = ds.NpzDSprites(path)
    assert isinstance(data._imgs, np.memmap) != compressed
    assert len(data) == len(idx)
    assert torch.equal(data.images([4, 0, 2]), torch.from_numpy(imgs[[4, 0, 2]]))
    x, y = data[1]
    assert x.shape == (1, 64, 64) and y.tolist() == classes[1].tolist()
    assert data.metadata is ds.METADATA  # the pickled metadata member is never unpickled
    from elbits.train.data import build_dataset

    sub = build_dataset(str(path), train_size=5, data_seed=3)
    want = np.sort(np.random.default_rng(3).choice(len(idx), 5, replace=False))
    assert isinstance(sub, ds.NpzDSprites) and sub.indices.tolist() == want.tolist()
    assert torch.equal(sub.images([0, 4]), torch.from_numpy(imgs[want[[0, 4]]]))
    assert sub.classes.tolist() == classes[want].tolist() and len(data) == len(idx)
    with pytest.raises(FileNotFoundError):
        ds.NpzDSprites(tmp_path / "missing.npz")


@needs_png
def test_best_match_iou_median_on_real_images():
    real = fidelity.load_reference_grid(REAL_PNG)
    assert real.shape == (100, 64, 64) and set(np.unique(real)) == {0, 1}
    iou, classes = fidelity.match_all(real[::10])  # 10 of the 100 (all 100: docs/data-and-entropy.md)
    assert np.median(iou) >= 0.9
    assert iou.min() > 0.7


@needs_vae
def test_pretrained_vae_distortion_procedural_close_to_real():
    import elbits
    from elbits.models import load_disentangling_vae

    torch.manual_seed(0)
    model = load_disentangling_vae(VAE_MODEL)
    real = torch.from_numpy(fidelity.load_reference_grid(REAL_PNG))[:, None].float()
    idx = np.random.default_rng(0).choice(ds.NUM_IMAGES, 1000, replace=False)
    proc = ds.render_index(idx)[:, None].float()
    with torch.no_grad():
        d_real = elbits.elbo_terms(*model(real)[:1], real, *model(real)[1:]).recon_bits.mean().item()
        d_proc = elbits.elbo_terms(*model(proc)[:1], proc, *model(proc)[1:]).recon_bits.mean().item()
    assert 5 < d_real < 40  # ~18 bits per image with z = mu
    assert d_proc <= 1.25 * d_real, (d_proc, d_real)


@pytest.mark.slow
def test_full_set_empirical_entropy():
    from elbits import entropy as E

    res = E.empirical_entropy(ds.iter_images())
    assert res.total == ds.NUM_IMAGES
    assert res.distinct <= ds.NUM_IMAGES - ds.NUM_IMAGES // 40  # at least the orientation-39 duplicates
    assert res.entropy.bits < E.factor_entropy(ds.SIZES).bits
