"""Adapters for pythae and disentangling-vae models: each client's own loss numbers beside elbits' on one
batch,
and the adapted models metered, evaluated and trained by elbits.

The pythae tests need `pip install pythae` (the `interop` extra) and skip without it; disentangling-vae's
model and BetaH loss are tests/disvae_reference.py (copied from its repository), with its checkpoint from
../shared/reference when present.
"""

from __future__ import annotations

import importlib.util
import math

import disvae_reference as dv
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from reference_files import REAL_PNG, VAE_MODEL
from torch import nn
from torch.nn import functional as F

import elbits
from elbits.evaluate import evaluate_model
from elbits.models import DisentanglingVAEAdapter, PythaeAdapter, adapt, load_disentangling_vae
from elbits.models.adapters import probs_input_available
from elbits.train import TrainConfig, train

HAVE_PYTHAE = importlib.util.find_spec("pythae") is not None
needs_pythae = pytest.mark.skipif(not HAVE_PYTHAE, reason="pythae not installed (pip install pythae)")
needs_probs = pytest.mark.skipif(not probs_input_available(), reason="elbo_terms has no input='probs' yet")
REL = 1e-6  # "where the formulas agree": both sides sum the same per-pixel terms in float32


def rel(a, b) -> float:
    a, b = float(torch.as_tensor(a).detach()), float(torch.as_tensor(b).detach())
    return abs(a - b) / max(abs(b), 1e-30)


def images(n: int = 32) -> torch.Tensor:
    """``[n, 1, 64, 64]`` float {0, 1}: the real dSprites samples when ../shared has them, else seeded
    squares."""
    if REAL_PNG.is_file():
        from elbits.data.fidelity import load_reference_grid

        return torch.from_numpy(load_reference_grid(REAL_PNG)[:n]).float()[:, None]
    g = np.random.default_rng(0)
    x = np.zeros((n, 1, 64, 64), np.float32)
    for i in range(n):
        r, c, s = g.integers(8, 40), g.integers(8, 40), g.integers(6, 16)
        x[i, 0, r : r + s, c : c + s] = 1
    return torch.from_numpy(x)


def disvae_model(trained: bool = True) -> dv.VAE:
    torch.manual_seed(0)
    m = dv.VAE()
    if trained and VAE_MODEL.is_file():
        m.load_state_dict(torch.load(VAE_MODEL, map_location="cpu", weights_only=True))
    return m


def pythae_vae(beta: float | None = None, input_dim=(1, 64, 64), encoder=None, decoder=None):
    from pythae.models import VAE, BetaVAE, BetaVAEConfig, VAEConfig

    torch.manual_seed(0)
    if beta is None:
        return VAE(VAEConfig(input_dim=input_dim, latent_dim=8, reconstruction_loss="bce"), encoder, decoder)
    return BetaVAE(
        BetaVAEConfig(input_dim=input_dim, latent_dim=8, reconstruction_loss="bce", beta=beta),
        encoder,
        decoder,
    )


# --- the clients' own loss numbers beside elbits' --------------------------------------------------------


@needs_pythae
@pytest.mark.parametrize("beta", [None, 4.0], ids=["VAE", "BetaVAE"])
def test_pythae_own_loss_beside_elbits(beta):
    model = pythae_vae(beta).train()
    # An untrained encoder's q(z|x) is the prior to ~0.01 nats, where pythae's float32
    # 1 + logvar - exp(logvar) keeps only ~5 digits (test_pythae_kl_near_the_prior): moved off it here.
    with torch.no_grad():
        model.encoder.embedding.bias.fill_(0.5)
        model.encoder.log_var.bias.fill_(-1.0)
    a = PythaeAdapter(model)
    assert a.decoder_output == "logits"  # Decoder_AE_MLP ends in nn.Sigmoid: its input is taken
    x = images(16)
    torch.manual_seed(1)
    out = model({"data": x})  # pythae's forward: loss, recon_loss, reg_loss (means over the batch)
    torch.manual_seed(1)
    logits, mu, logvar = a(x)
    t = elbits.elbo_terms(logits, x, mu, logvar)
    b = 1.0 if beta is None else beta
    assert torch.equal(torch.sigmoid(logits), out.recon_x)  # the same z: pythae's draw
    assert rel(t.recon.mean(), out.recon_loss) <= REL
    assert rel(t.kl_total.mean(), out.reg_loss) <= REL
    assert rel((t.recon + b * t.kl_total).mean(), out.loss) <= REL
    crit = elbits.ELBOLoss(beta=b)
    assert rel(crit(logits, x, mu, logvar), out.loss) <= REL


@needs_pythae
def test_pythae_kl_near_the_prior():
    """At init the KL is ~0.01 nats: elbits' matches float64 to 1e-6, pythae's own float32 one only to
    ~1e-5."""
    model = pythae_vae(None).train()
    a = PythaeAdapter(model)
    x = images(16)
    torch.manual_seed(1)
    out = model({"data": x})
    torch.manual_seed(1)
    t = a.terms(x)
    with torch.no_grad():
        mu, lv = (v.double() for v in a.encode(x))
    kl64 = (-0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp(), dim=-1)).mean()
    assert float(out.reg_loss.detach()) < 0.1
    assert rel(t.kl_total.mean(), kl64) <= REL
    assert rel(out.reg_loss, kl64) <= 1e-4


@needs_pythae
def test_pythae_conv_benchmark_decoder_gives_logits():
    from pythae.models import VAEConfig
    from pythae.models.nn.benchmarks.mnist import Decoder_Conv_AE_MNIST, Encoder_Conv_VAE_MNIST

    cfg = VAEConfig(input_dim=(1, 28, 28), latent_dim=8, reconstruction_loss="bce")
    torch.manual_seed(0)
    model = pythae_vae(None, (1, 28, 28), Encoder_Conv_VAE_MNIST(cfg), Decoder_Conv_AE_MNIST(cfg)).train()
    a = adapt(model)
    assert isinstance(a, PythaeAdapter) and a.decoder_output == "logits"
    x = (torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    torch.manual_seed(3)
    out = model({"data": x})
    torch.manual_seed(3)
    logits, mu, logvar = a(x)
    t = elbits.elbo_terms(logits, x, mu, logvar)
    assert torch.equal(torch.sigmoid(logits), out.recon_x)
    assert rel(t.kl_total.mean(), out.reg_loss) <= REL
    # This untrained decoder reaches |logit| 18: a float32 sigmoid of 1.0 against a 0 pixel costs 100 nats in
    # pythae's clamped BCE and |logit| nats in truth. elbits' recon is the float64 truth to 1e-6; pythae's
    # own per-image BCE differs from it by those pixels' excess (and float32 rounding near p = 1).
    l64 = logits.detach().double()
    truth = F.binary_cross_entropy_with_logits(l64, x.double(), reduction="none").sum((1, 2, 3))
    assert torch.allclose(t.recon.detach().double(), truth, rtol=REL)
    p = out.recon_x.detach()
    own = F.binary_cross_entropy(p, x, reduction="none").sum((1, 2, 3)).double()
    sat = ((p == 1) & (x == 0)) | ((p == 0) & (x == 1))
    excess = ((100 - F.softplus(l64.abs())) * sat).sum((1, 2, 3))
    assert sat.any()
    assert torch.allclose(own - excess, truth, rtol=1e-4)


@needs_pythae
def test_pythae_gradients_match_its_own_loss():
    model = pythae_vae(4.0).train()
    a = PythaeAdapter(model)
    x = images(8)
    torch.manual_seed(5)
    model({"data": x}).loss.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    torch.manual_seed(5)
    logits, mu, logvar = a(x)
    elbits.ELBOLoss(beta=4.0)(logits, x, mu, logvar).backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, want[n], rtol=1e-4, atol=1e-6 * want[n].abs().max()), n


@pytest.mark.parametrize("beta", [1.0, 4.0])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_disvae_betah_loss_beside_elbits(beta, mode):
    model = disvae_model()
    model.train(mode == "train")
    a = DisentanglingVAEAdapter(model)
    assert a.decoder_output == "logits"  # torch.sigmoid(convT3(x)): convT3's output is taken
    x = images(64)
    torch.manual_seed(7)
    recon, latent_dist, _ = model(x)  # disentangling-vae's forward
    ref = dv.beta_h_loss(x, recon, latent_dist, beta)
    torch.manual_seed(7)
    t = a.terms(x)
    assert rel((t.recon + beta * t.kl_total).mean(), ref) <= REL
    assert rel(t.recon.mean(), dv.reconstruction_loss(x, recon)) <= REL
    assert rel(t.kl_total.mean(), dv.kl_normal_loss(*latent_dist)) <= REL


@pytest.mark.skipif(not VAE_MODEL.is_file(), reason="reference checkpoint absent")
def test_disvae_adapter_is_the_native_burgess_model():
    model = disvae_model().eval()
    a = adapt(model)
    native = load_disentangling_vae(VAE_MODEL)
    x = images(100)
    with torch.no_grad():
        mu, logvar = a.encode(x)
        assert torch.equal(a.decode(mu), native.decode(mu))
        assert torch.equal(torch.sigmoid(a.decode(mu)), model.decoder(mu))
    kw = dict(samples=2, mi_points=64, mi_samples=2)
    got, want = evaluate_model(a, x, **kw).to_dict(), evaluate_model(native, x, **kw).to_dict()
    for k in (
        "rate_bits",
        "distortion_bits",
        "distortion_mu_bits",
        "mi_bits",
        "kl_per_dim_bits",
        "active_units",
    ):
        assert got[k] == want[k], k


# --- metered, evaluated, trained ---------------------------------------------------------------------


def _clients():
    out = [pytest.param(lambda: DisentanglingVAEAdapter(disvae_model(trained=False)), id="disentangling-vae")]
    out.append(pytest.param(lambda: PythaeAdapter(pythae_vae(4.0)), id="pythae", marks=needs_pythae))
    return out


@pytest.mark.parametrize("make", _clients())
def test_metered(make):
    a = make()
    meter = elbits.RateDistortionMeter()
    x = images(32)
    kl = []
    with torch.no_grad():
        for xb in x.split(8):
            t = a.terms(xb)
            meter.update(t)
            kl.append(t.kl_total.double())
    s = meter.scalars()
    assert s["samples"] == 32
    assert math.isclose(s["rate_bits"], float(torch.cat(kl).mean()) / math.log(2), rel_tol=1e-6)
    assert s["distortion_bits"] > 0


@pytest.mark.parametrize("make", _clients())
def test_evaluated(make):
    a = make()
    a.train()
    ev = evaluate_model(a, images(32), samples=2, mi_points=16, mi_samples=2)
    d = ev.to_dict()
    assert d["images"] == 32 and math.isfinite(d["rate_bits"]) and d["distortion_bits"] > 0
    assert a.training  # evaluate_model restores the mode


@pytest.mark.parametrize("make", _clients())
def test_trained(make, tmp_path):
    a = make()
    before = {k: v.clone() for k, v in a.model.state_dict().items()}
    data = list(images(32))
    r = train(
        TrainConfig(
            steps=6,
            batch_size=8,
            log_every=3,
            out_dir=str(tmp_path),
            progress=False,
            tensorboard=False,
            eval_limit=32,
        ),
        model=a,
        dataset=data,
    )
    assert r.model is a and r.step == 6
    after = a.model.state_dict()
    assert set(after) == set(before)  # the client's own state_dict, loadable into its class
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert math.isfinite(r.final["rate_bits"]) and r.final["samples"] == 32
    # no hook left behind on the client's modules
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in a.model.modules())


class _ClampedDecoder(dv.DecoderBurgess):
    """Probabilities kept off 0 and 1 after the sigmoid: its input is no longer the logits of what it
    returns."""

    def forward(self, z):
        return super().forward(z).clamp(1e-4, 1 - 1e-4)


def _probs_disvae() -> DisentanglingVAEAdapter:
    m = disvae_model()
    m.decoder = _ClampedDecoder(m.img_size, m.latent_dim)
    m.decoder.load_state_dict(disvae_model().decoder.state_dict())
    a = DisentanglingVAEAdapter(m)
    assert a.decoder_output == "probs"
    return a


@needs_probs
def test_evaluated_from_probabilities():
    a = _probs_disvae()
    x = images(32)
    ev = evaluate_model(a, x, samples=1, mi_points=16, mi_samples=2)
    with torch.no_grad():
        mu, _ = a.encode(x)
        p = a.model.decoder(mu)
    want = float(F.binary_cross_entropy(p.double(), x.double(), reduction="sum")) / 32 / math.log(2)
    assert math.isclose(ev.distortion_mu_bits, want, rel_tol=1e-5)


@needs_probs
@pytest.mark.skipif(
    importlib.util.find_spec("elbits.train.decoders") is None,
    reason="elbits.train reads no declared decoder output yet",
)
def test_trained_from_probabilities(tmp_path):
    a = _probs_disvae()
    r = train(
        TrainConfig(
            steps=2,
            batch_size=8,
            log_every=2,
            out_dir=str(tmp_path),
            progress=False,
            tensorboard=False,
            eval_limit=16,
        ),
        model=a,
        dataset=list(images(16)),
    )
    assert r.head.kind == "probs" and math.isfinite(r.final["distortion_bits"])


def test_state_dict_is_the_clients_under_model():
    m = disvae_model(trained=False)
    a = DisentanglingVAEAdapter(m)
    assert set(a.state_dict()) == {f"model.{k}" for k in m.state_dict()}


# --- how the decoder's output kind is found ---------------------------------------------------------


class _Decoder(nn.Module):
    """A decoder from z [B, 3] to [B, 2, 3] whose last step is ``tail``."""

    def __init__(self, tail: str) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 6)
        self.sig = nn.Sigmoid()
        self.tail = tail

    def pre(self, z):
        return self.lin(z)

    def forward(self, z):
        h = self.lin(z)
        b = z.shape[0]
        if self.tail == "module":
            return self.sig(h).view(b, 2, 3)
        if self.tail == "functional":
            return F.sigmoid(h).reshape(b, 2, 3)
        if self.tail == "method":
            return h.sigmoid().view(b, 2, 3)
        if self.tail == "clamp":
            return torch.sigmoid(h).clamp(1e-6, 1 - 1e-6).view(b, 2, 3)
        if self.tail == "scaled":
            return (torch.sigmoid(h) * 1.0).view(b, 2, 3)
        if self.tail == "inplace":
            return torch.sigmoid(h).mul_(1.0).view(b, 2, 3)
        if self.tail == "inplace_clamp":
            return torch.sigmoid(h).clamp_(0.7, 0.9).view(b, 2, 3)
        if self.tail == "permuted":
            return torch.sigmoid(h.view(b, 3, 2)).transpose(1, 2)
        if self.tail == "later_sigmoid":
            p = torch.sigmoid(h)
            torch.sigmoid(h * 2)
            return p.view(b, 2, 3)
        if self.tail == "logits":
            return h.view(b, 2, 3)
        raise AssertionError(self.tail)


class _PairEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x):
        return self.lin(x.flatten(1)).view(-1, 3, 2).unbind(-1)


class _TinyDisvae(nn.Module):
    """disentangling-vae's interface (encoder -> (mu, logvar), decoder, reparameterize) at toy size."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.latent_dim = 3
        self.encoder = _PairEncoder()
        self.decoder = decoder

    def reparameterize(self, mu, logvar):
        return mu


@pytest.mark.parametrize("tail", ["module", "functional", "method"])
def test_a_final_sigmoid_gives_its_input_as_logits(tail):
    a = DisentanglingVAEAdapter(_TinyDisvae(_Decoder(tail)))
    assert a.decoder_output == "logits"
    z = torch.randn(4, 3)
    assert torch.equal(a.decode(z), a.model.decoder.pre(z).view(4, 2, 3))


@needs_probs
@pytest.mark.parametrize("tail", ["clamp", "scaled", "inplace", "inplace_clamp", "permuted", "later_sigmoid"])
def test_anything_after_the_sigmoid_reads_as_probabilities(tail):
    a = DisentanglingVAEAdapter(_TinyDisvae(_Decoder(tail)))
    assert a.decoder_output == "probs"
    x = (torch.rand(5, 2, 3, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    t = a.terms(x)
    p = a.model.decoder(a.encode(x)[0])
    assert torch.allclose(t.recon, F.binary_cross_entropy(p, x, reduction="none").sum((1, 2)), rtol=1e-6)


@pytest.mark.parametrize(
    "tail, kind",
    [
        ("module", "logits"),
        ("method", "logits"),
        pytest.param("inplace_clamp", "probs", marks=needs_probs),
        pytest.param("clamp", "probs", marks=needs_probs),
    ],
)
def test_under_inference_mode(tail, kind):
    """Inference tensors keep no version counter: the values behind the sigmoid are checked instead."""
    with torch.inference_mode():
        a = DisentanglingVAEAdapter(_TinyDisvae(_Decoder(tail)))
        assert a.decoder_output == kind
        z = torch.randn(4, 3)
        out = a.decode(z)
    if kind == "logits":
        assert torch.equal(out, a.model.decoder.pre(z).view(4, 2, 3))


def test_declared_logits_are_taken_as_they_are():
    a = DisentanglingVAEAdapter(_TinyDisvae(_Decoder("logits")), decoder_output="logits")
    z = torch.randn(2, 3)
    assert torch.equal(a.decode(z), a.model.decoder(z))


@needs_pythae
@needs_probs
def test_pythae_probabilities_decoder_beside_its_own_loss():
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder

    class ClampedDecoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 64 * 64)

        def forward(self, z):
            p = torch.sigmoid(self.lin(z)).clamp(1e-4, 1 - 1e-4)
            return ModelOutput(reconstruction=p.view(-1, 1, 64, 64))

    model = pythae_vae(2.0, decoder=ClampedDecoder()).train()
    a = PythaeAdapter(model)
    assert a.decoder_output == "probs"
    x = images(8)
    torch.manual_seed(4)
    out = model({"data": x})
    torch.manual_seed(4)
    t = a.terms(x)
    assert rel((t.recon + 2.0 * t.kl_total).mean(), out.loss) <= REL


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), batch=st.integers(1, 5))
def test_logits_behind_any_reshaped_sigmoid(shape, batch):
    n = int(np.prod(shape))

    class Dec(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, n)

        def forward(self, z):
            return torch.sigmoid(self.lin(z)).view(z.shape[0], *shape)

    torch.manual_seed(0)
    m = _TinyDisvae(Dec())
    a = DisentanglingVAEAdapter(m)
    z = torch.randn(batch, 3)
    logits = a.decode(z)
    assert logits.shape == (batch, *shape)
    assert torch.equal(logits, m.decoder.lin(z).view(batch, *shape))
