"""A model whose encoder reads uint8 levels itself (``reads_levels = True``, as ColourVAE) is fed them
unscaled by the bits-back codec and the bounds table, so its rate is the one training measured."""

import torch

import elbits
from elbits.codec import BitsBackCodec
from elbits.codec.bitsback import default_input
from elbits.entropy import image_bounds
from elbits.models import ColourVAE


def _levels(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)


def test_level_reading_models_get_the_levels_unscaled():
    x = _levels()
    model = ColourVAE(z_dim=4, channels=3, size=32, likelihood="logistic_mixture").eval()
    assert default_input("logistic_mixture", model)(x) is x
    assert BitsBackCodec(model, "logistic_mixture").to_input(x) is x
    # models without the declaration keep the codec's convention, l / 127.5 - 1
    plain = default_input("logistic_mixture", object())(x)
    assert plain.dtype == torch.float32 and float(plain.min()) >= -1.0 and float(plain.max()) <= 1.0


def test_colour_vae_codes_at_its_training_nelbo():
    torch.manual_seed(0)
    x = _levels()
    model = ColourVAE(z_dim=4, channels=3, size=32, likelihood="logistic_mixture").eval()
    codec = BitsBackCodec(model, "logistic_mixture")
    blob = codec.encode(x, elbo_samples=4)
    assert torch.equal(codec.decode(blob), x)
    # the -ELBO the way training computes it: ELBOLoss on the levels as level / 255 floats
    with torch.no_grad():
        mu, logvar = model.encode(x.float() / 255)
        t = elbits.elbo_terms(model.decode(mu), x, mu, logvar, likelihood="logistic_mixture")
    s = codec.stats.summary()
    # an untrained model's posteriors are wide: D at z = mu is within a few per cent of the sampled -ELBO
    assert abs(s["nelbo_bits_per_image"] / float(t.nelbo_bits.mean()) - 1) < 0.05, s
    b = image_bounds(x, model=model, likelihood="logistic_mixture", codec=False, baselines=False)
    assert b is not None


def test_compress_and_decompress_a_colour_checkpoint(tmp_path, monkeypatch, capsys):
    import numpy as np

    from elbits.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run = tmp_path / "run"
    args = ["train", "--data", "colour-sprites", "--size", "32", "--steps", "3", "--batch-size", "8"]
    assert main([*args, "--out", str(run), "--no-progress", "--no-tensorboard"]) in (0, None)
    x = _levels(n=5, seed=1).numpy()
    np.save(tmp_path / "x.npy", x)
    assert main(["compress", str(run), str(tmp_path / "x.npy"), "-o", str(tmp_path / "x.elbb")]) in (0, None)
    out = tmp_path / "y.npy"
    assert main(["decompress", str(run), str(tmp_path / "x.elbb"), "-o", str(out)]) in (0, None)
    assert np.array_equal(np.load(out), x)
    # without IMAGES there is nothing to code: procedural dSprites are binary
    capsys.readouterr()
    assert main(["compress", str(run), "-o", str(tmp_path / "z.elbb")]) == 2
    assert "needs IMAGES" in capsys.readouterr().err
    assert not (tmp_path / "z.elbb").exists()
