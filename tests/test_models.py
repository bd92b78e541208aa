"""BurgessVAE: shapes, eval/train behaviour, and loading a disentangling-vae checkpoint."""

from __future__ import annotations

import pytest
import torch
from reference_files import VAE_MODEL

from elbits.models import BurgessVAE, load_disentangling_vae


def test_shapes_and_modes():
    torch.manual_seed(0)
    m = BurgessVAE(z_dim=10)
    x = torch.rand(3, 1, 64, 64)
    m.eval()
    logits, mu, logvar = m(x)
    assert logits.shape == (3, 1, 64, 64) and mu.shape == logvar.shape == (3, 10)
    assert torch.equal(logits, m.decode(mu))
    m.train()
    assert not torch.equal(m(x)[0], logits)


def test_state_dict_keys_match_checkpoint_layout(tmp_path):
    m = BurgessVAE()
    keys = set(m.state_dict())
    assert {
        "encoder.conv_64.weight",
        "encoder.mu_logvar_gen.weight",
        "decoder.convT_64.weight",
        "decoder.convT3.weight",
    } <= keys
    torch.save(m.state_dict(), tmp_path / "model.pt")
    loaded = load_disentangling_vae(tmp_path)
    assert not loaded.training
    x = torch.rand(2, 1, 64, 64)
    m.eval()
    assert torch.equal(loaded(x)[0], m(x)[0])


@pytest.mark.skipif(not VAE_MODEL.is_file(), reason="reference checkpoint absent")
def test_loads_reference_checkpoint_interleaved():
    m = load_disentangling_vae(VAE_MODEL)
    seen = {}
    m.encoder.mu_logvar_gen.register_forward_hook(lambda mod, inp, out: seen.update(out=out))
    x = torch.zeros(2, 1, 64, 64)
    x[:, :, 20:40, 20:40] = 1.0
    with torch.no_grad():
        mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (2, 10)
    pairs = seen["out"].view(2, 10, 2)
    assert torch.equal(mu, pairs[..., 0]) and torch.equal(logvar, pairs[..., 1])


# ---- ColourVAE: the decoder emits the chosen likelihood's layout -----------------------------------------


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("likelihood", ["logistic_mixture", "categorical256", "discretized_gaussian"])
def test_colour_vae_emits_the_likelihoods_layout(likelihood, channels, size):
    from elbits import elbo_terms
    from elbits.models import ColourVAE
    from elbits.train.decoders import Head

    torch.manual_seed(0)
    m = ColourVAE(z_dim=4, channels=channels, size=size, likelihood=likelihood, mixtures=3)
    x = torch.randint(0, 256, (2, channels, size, size), dtype=torch.uint8)
    out, mu, logvar = m(x)
    want = {
        "logistic_mixture": (10 if channels == 3 else 3) * 3,
        "categorical256": 256 * channels,
        "discretized_gaussian": 2 * channels,
    }[likelihood]
    assert out.shape == (2, want, size, size) and mu.shape == logvar.shape == (2, 4)
    head = Head(likelihood, m.decoder_output, channels, components=3)
    head.check(out, x.float() / 255)
    t = head.terms(out, x.float() / 255, mu, logvar)  # the likelihood reads the layout as it is
    assert t.dims == channels * size * size and torch.isfinite(t.recon).all()
    if likelihood == "categorical256":  # channel l * C + c is level l of image channel c
        direct = elbo_terms(out.view(2, 256, channels, size, size), x, mu, logvar, "categorical256")
        assert torch.allclose(direct.recon, t.recon)


def test_colour_vae_reads_levels_scaled_to_minus_one_one():
    from elbits.models import ColourVAE

    torch.manual_seed(0)
    m = ColourVAE(z_dim=3, channels=3, size=32).eval()
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    seen = {}
    m.enc_convs[0].register_forward_pre_hook(lambda mod, inp: seen.update(x=inp[0]))
    mu = m.encode(x)[0]
    assert float(seen["x"].min()) >= -1 and float(seen["x"].max()) <= 1
    assert torch.allclose(seen["x"], x.float() / 127.5 - 1)
    assert torch.allclose(m.encode(x.float() / 255)[0], mu, atol=1e-5)  # floats level/255 read the same


def test_colour_vae_state_dict_round_trip_and_bad_settings():
    from elbits.errors import InputError
    from elbits.models import ColourVAE, colour_from_state_dict

    torch.manual_seed(0)
    m = ColourVAE(z_dim=5, channels=3, size=32, likelihood="discretized_gaussian").eval()
    loaded = colour_from_state_dict(m.state_dict(), "discretized_gaussian")
    assert loaded.settings() == m.settings()
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(loaded(x)[0], m(x)[0])
    with pytest.raises(InputError, match="not 48"):
        ColourVAE(size=48)
    with pytest.raises(InputError, match="not 'bernoulli'"):
        ColourVAE(likelihood="bernoulli")
    with pytest.raises(InputError, match="1- or 3-channel"):
        ColourVAE(channels=2, likelihood="logistic_mixture")
