"""Hostile inputs to elbits.models' adapters: each wrong model or setting is refused with one clear line
(InputError), and a decoder that changes under an adapter is a RuntimeError, never a silently wrong loss."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from elbits.errors import InputError
from elbits.models import DisentanglingVAEAdapter, PythaeAdapter, adapt
from elbits.models import adapters as A

needs_pythae = pytest.mark.skipif(importlib.util.find_spec("pythae") is None, reason="pythae not installed")


class _Encoder(nn.Module):
    def __init__(self, kind: str = "pair") -> None:
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.kind = kind

    def forward(self, x):
        mu, logvar = self.lin(x.flatten(1)).view(-1, 3, 2).unbind(-1)
        if self.kind == "single":
            return mu
        if self.kind == "triple":
            return mu, logvar, mu
        if self.kind == "batch":
            return mu[:1], logvar[:1]
        if self.kind == "flat":
            return mu.flatten(), logvar.flatten()
        if self.kind == "numbers":
            return 0.0, 1.0
        return mu, logvar


class _Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 6)
        self.act = nn.Sigmoid()

    def forward(self, z):
        return self.act(self.lin(z)).view(-1, 2, 3)


class _Disvae(nn.Module):
    def __init__(self, encoder: str = "pair", latent_dim=3) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = _Encoder(encoder)
        self.decoder = _Decoder()

    def reparameterize(self, mu, logvar):
        return mu


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


@pytest.mark.parametrize(
    "thing",
    [None, 3, "model.pt", nn.Linear(2, 2), nn.Sequential()],
    ids=["None", "int", "str", "Linear", "Sequential"],
)
def test_adapt_refuses_what_it_does_not_know(thing):
    with pytest.raises(InputError) as e:
        adapt(thing)
    assert "pythae and disentangling-vae" in one_line(e)


@pytest.mark.parametrize("cls", [PythaeAdapter, DisentanglingVAEAdapter])
@pytest.mark.parametrize("thing", [None, nn.Linear(2, 2), object()], ids=["None", "Linear", "object"])
def test_adapters_refuse_other_objects(cls, thing):
    with pytest.raises(InputError) as e:
        cls(thing)
    assert cls.__name__ in one_line(e)


@pytest.mark.parametrize("value", ["logit", "", "LOGITS", None, 1, "sigmoid"])
def test_decoder_output_must_be_a_known_kind(value):
    with pytest.raises(InputError) as e:
        DisentanglingVAEAdapter(_Disvae(), decoder_output=value)
    assert "decoder_output must be one of" in one_line(e)


@pytest.mark.parametrize("latent", [0, -2, "3", None, 3.0, True])
def test_latent_dim_must_be_a_positive_int(latent):
    with pytest.raises(InputError) as e:
        DisentanglingVAEAdapter(_Disvae(latent_dim=latent))
    assert "latent_dim" in one_line(e)


@pytest.mark.parametrize("kind", ["single", "triple", "batch", "flat", "numbers"])
def test_encoder_output_must_be_mu_and_logvar_per_image(kind):
    a = DisentanglingVAEAdapter(_Disvae(kind))  # the decoder probe does not run the encoder
    with pytest.raises(InputError) as e:
        a.encode(torch.rand(4, 2, 3))
    assert "encoder" in one_line(e)


def test_a_decoder_changed_under_the_adapter_is_an_error_not_a_wrong_loss():
    a = DisentanglingVAEAdapter(_Disvae())
    assert a.decoder_output == "logits"
    a.model.decoder.act = nn.Tanh()  # no sigmoid any more: its output is no logit
    with pytest.raises(RuntimeError, match="no longer ends in the sigmoid"):
        a.decode(torch.zeros(2, 3))


def test_probabilities_are_refused_while_elbits_cannot_read_them(monkeypatch):
    monkeypatch.setattr(A, "probs_input_available", lambda: False)
    m = _Disvae()
    m.decoder.act = nn.Tanh()
    with pytest.raises(InputError) as e:
        DisentanglingVAEAdapter(m)
    assert "returns probabilities" in one_line(e)
    with pytest.raises(InputError) as e:
        DisentanglingVAEAdapter(_Disvae(), decoder_output="probs")
    assert "declared to return probabilities" in one_line(e)


def test_the_probe_leaves_the_models_mode_and_statistics():
    m = _Disvae()
    m.decoder.norm = nn.BatchNorm1d(3)
    m.decoder.forward = lambda z: m.decoder.act(m.decoder.lin(m.decoder.norm(z))).view(-1, 2, 3)
    m.train()
    DisentanglingVAEAdapter(m)
    assert m.training and m.decoder.norm.training
    assert int(m.decoder.norm.num_batches_tracked) == 0


@needs_pythae
def test_pythae_autoencoder_without_log_covariance_is_refused():
    from pythae.models import AE, AEConfig

    with pytest.raises(InputError) as e:
        PythaeAdapter(AE(AEConfig(input_dim=(1, 8, 8), latent_dim=3)))
    assert "log_covariance" in one_line(e)


@needs_pythae
def test_pythae_mse_model_is_refused():
    from pythae.models import VAE, VAEConfig

    with pytest.raises(InputError) as e:
        PythaeAdapter(VAE(VAEConfig(input_dim=(1, 8, 8), latent_dim=3, reconstruction_loss="mse")))
    assert "reconstruction_loss='mse'" in one_line(e)


@needs_pythae
@pytest.mark.parametrize("name", ["VAMP", "SVAE", "VAE_IAF", "VAE_LinNF", "HVAE"])
def test_pythae_models_whose_rate_is_not_the_kl_to_n01_are_refused(name):
    import pythae.models as pm

    cfg_name = {"VAE_IAF": "VAE_IAF_Config", "VAE_LinNF": "VAE_LinNF_Config"}.get(name, f"{name}Config")
    model = getattr(pm, name)(getattr(pm, cfg_name)(input_dim=(1, 8, 8), latent_dim=2))
    with pytest.raises(InputError) as e:
        PythaeAdapter(model)
    assert f"pythae {name}" in one_line(e)


@needs_pythae
@pytest.mark.parametrize("result", ["tensor", "empty", "other_key"])
def test_pythae_decoder_without_reconstruction_is_refused(result):
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder

    class Odd(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 64)

        def forward(self, z):
            p = torch.sigmoid(self.lin(z)).view(-1, 1, 8, 8)
            return {"tensor": p, "empty": ModelOutput(), "other_key": ModelOutput(recon=p)}[result]

    with pytest.raises(InputError) as e:
        PythaeAdapter(
            VAE(VAEConfig(input_dim=(1, 8, 8), latent_dim=3, reconstruction_loss="bce"), decoder=Odd())
        )
    assert "'reconstruction'" in one_line(e)
