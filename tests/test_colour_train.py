"""Training on 8-bit colour data: the CLI end to end in bits/dim, resume equal to an uninterrupted run, the
colour budget, the fused likelihood ops in the step, and every misused flag in one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tiny_runs import QUIET, without_wall

from elbits.errors import InputError
from elbits.train import TrainConfig, data_budget, load_checkpoint, read_jsonl, train
from elbits.train.data import LevelImages, colour_training_set

# Tiny runs: 32 px, a few images, 4 latents, 2 mixture components.
TINY = dict(data="colour-sprites", size=32, train_size=32, batch_size=8, z_dim=4, mixture_components=2)


def _cfg(out, **kw) -> TrainConfig:
    base = dict(
        TINY, likelihood="logistic_mixture", steps=8, log_every=2, eval_at_end=False, out_dir=str(out)
    )
    return TrainConfig(**{**base, **QUIET, **kw})


def test_cli_trains_colour_sprites_in_bits_per_dim(tmp_path, capsys):
    from elbits.cli import main

    out = tmp_path / "run"
    argv = ["train", "--out", str(out), "--data", "colour-sprites", "--likelihood", "logistic_mixture"]
    argv += ["--size", "32", "--steps", "20", "--batch-size", "8", "--train-size", "64", "--z-dim", "4"]
    argv += ["--mixtures", "2", "--log-every", "10", "--no-progress", "--no-tensorboard"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[0])
    assert summary["step"] == 20 and 0 < summary["nelbo_bits_per_dim"] < 8
    dims = 3 * 32 * 32
    for rec in [*read_jsonl(out / "metrics.jsonl"), json.loads((out / "final.json").read_text())]:
        assert rec["dims"] == dims
        assert math.isclose(rec["distortion_bits_per_dim"] * dims, rec["distortion_bits"], rel_tol=1e-9)
        assert math.isclose(rec["nelbo_bits_per_dim"] * dims, rec["nelbo_bits"], rel_tol=1e-9)
    final = json.loads((out / "final.json").read_text())
    assert final["likelihood"] == "logistic_mixture" and final["decoder_output"] == "params"
    # 64 distinct images: H(X) = log2 64 bits, the budget a target-rate run would aim at
    assert final["budget"]["empirical_bits"] == pytest.approx(6.0) and final["budget"]["levels"] == 256
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["config"]["data"] == "colour-sprites" and ck["config"]["size"] == 32
    assert ck["model"]["dec_convs.2.weight"].shape[1] == 10 * 2  # 10K channels, K = 2


def test_resume_gives_the_uninterrupted_run(tmp_path):
    kw = dict(controller="target-rate", controller_lr=0.05)  # a controller with state, aiming at H(X)
    straight = train(_cfg(tmp_path / "a", **kw))
    train(_cfg(tmp_path / "b", steps=4, **kw))
    resumed = train(_cfg(tmp_path / "b", resume="auto", **kw))
    for (k, va), vb in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert straight.criterion.state_dict() == resumed.criterion.state_dict()
    a, b = (without_wall(read_jsonl(r.out_dir / "metrics.jsonl")) for r in (straight, resumed))
    assert a == b and len(a) == 4 and "nelbo_bits_per_dim" in a[0]


@pytest.mark.parametrize("name,value", [("size", 64), ("data", "photos"), ("likelihood", "categorical256")])
def test_resume_refuses_another_data_set_or_likelihood(tmp_path, name, value):
    train(_cfg(tmp_path, steps=2))
    with pytest.raises(InputError, match=rf"cannot resume .*\b{name}\b"):
        train(_cfg(tmp_path, steps=4, resume="auto", **{name: value}))


@pytest.mark.parametrize("likelihood", ["categorical256", "discretized_gaussian"])
def test_other_colour_likelihoods_train(tmp_path, likelihood):
    r = train(_cfg(tmp_path, steps=2, likelihood=likelihood))
    assert type(r.model).__name__ == "ColourVAE" and r.model.likelihood == likelihood
    assert math.isfinite(r.history[-1]["nelbo_bits_per_dim"])


def test_training_uses_the_fused_op_not_the_reference(tmp_path, monkeypatch):
    import elbits.reference as ref
    from elbits._core import core

    def refuse(*a, **k):
        raise AssertionError("the float64 reference ran in training")

    for name in ("logistic_mixture_nll", "pixelcnn_pp_nll", "discretized_logistic_logp", "elbo_terms"):
        monkeypatch.setattr(ref, name, refuse)
    calls: list[str] = []

    def counted(name, fn):
        def call(*a, **k):
            calls.append(name)
            return fn(*a, **k)

        return call

    kernels = [n for n in dir(core) if "logistic_mixture" in n and callable(getattr(core, n))]
    assert kernels
    for name in kernels:
        monkeypatch.setattr(core, name, counted(name, getattr(core, name)))
    train(_cfg(tmp_path, steps=2))
    assert len(calls) >= 2, calls  # the compiled kernel, once a step at least


def test_colour_budget_is_log2_n_of_distinct_images():
    full = colour_training_set("colour-sprites", size=64)
    b = data_budget(full)
    assert b.distinct == b.images == 1296 and b.levels == 256
    assert b.empirical_bits == pytest.approx(math.log2(1296)) == b.factor_bits
    small = colour_training_set("colour-sprites", size=32, train_size=100, data_seed=3)
    bs = data_budget(small)
    assert bs.images == 100 and bs.factor_bits is None and bs.empirical_bits == pytest.approx(math.log2(100))
    # a repeated image lowers H(X) below log2 N
    lv = np.zeros((4, 3, 32, 32), np.uint8)
    lv[2:] = 9
    rep = data_budget(LevelImages(lv, "four images"))
    assert rep.distinct == 2 and rep.empirical_bits == pytest.approx(1.0)


def test_colour_sprites_at_32_px_are_box_means_of_the_64_px_levels():
    big = colour_training_set("colour-sprites", size=64)
    small = colour_training_set("colour-sprites", size=32)
    x64, x32 = big.rows([5, 700]).astype(np.int64), small.rows([5, 700]).astype(np.int64)
    want = (x64.reshape(2, 3, 32, 2, 32, 2).sum((3, 5)) + 2) // 4
    assert np.array_equal(x32, want)
    assert torch.equal(small.images([5]), torch.from_numpy(x32[:1]).float() / 255)


def test_an_image_folder_trains(tmp_path, monkeypatch):
    pytest.importorskip("elbits.data.images")
    from PIL import Image

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the decoded cache goes here
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    cfg = _cfg(tmp_path / "run", steps=2, data="images", images=str(folder), preprocess="resize")
    r = train(cfg)
    assert r.budget.images == 16 and r.budget.distinct == 16 and r.model.size == 32


def test_photo_patches_build():
    pytest.importorskip("skimage")
    ds = colour_training_set("photos", size=32, train_size=50)
    assert len(ds) == 50 and ds.images([0]).shape == (1, 3, 32, 32)


# ---- misused flags: one line, exit 2 ---------------------------------------------------------------------

BAD_FLAGS = {
    "size not 32/64": (["--data", "colour-sprites", "--size", "48"], "invalid choice: 48"),
    "size for dsprites": (["--size", "32"], "--size 32 is for colour data"),
    "missing folder": (["--images", "/no/such/folder"], "no such folder or file"),
    "bernoulli on colour": (["--data", "photos", "--likelihood", "bernoulli"], "does not model 8-bit colour"),
    "gaussian on colour": (["--data", "colour-sprites", "--likelihood", "gaussian"], "does not model 8-bit"),
    "no mixtures": (["--data", "colour-sprites", "--mixtures", "0"], "expected a positive integer"),
    "images and data": (["--images", ".", "--data", "photos"], "name two training sets"),
    "preprocess without images": (
        ["--data", "colour-sprites", "--preprocess", "none"],
        "--preprocess is for",
    ),
    "unknown preprocess": (["--images", ".", "--preprocess", "crop"], "invalid choice: 'crop'"),
    "npz with colour": (["--data", "colour-sprites", "--npz", __file__], "--npz is the real dSprites file"),
    "unknown data": (["--data", "cifar"], "invalid choice: 'cifar'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_misused_flag_is_one_line_exit_2(tmp_path, capsys, case):
    from elbits.cli import main

    argv, match = BAD_FLAGS[case]
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(["train", "--out", str(tmp_path / "run"), *argv]))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("elbits train: error:") and match in err[-1], err
    assert not (tmp_path / "run").exists()


BAD_SETTINGS = {
    "bernoulli on colour": (dict(likelihood="bernoulli"), "does not model 8-bit colour data"),
    "size 48": (dict(size=48), "size must be one of"),
    "images with colour-sprites": (dict(images="/tmp"), "name two training sets"),
    "images without a path": (dict(data="images"), "needs images"),
    "dsprites at 32": (dict(data="dsprites", likelihood="bernoulli"), "dSprites images are 64x64"),
    "unknown data": (dict(data="cifar"), "data must be one of"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_bad_colour_setting_is_refused(tmp_path, case):
    kw, match = BAD_SETTINGS[case]
    with pytest.raises(InputError, match=match):
        _cfg(tmp_path, **kw)
