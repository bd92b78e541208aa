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
