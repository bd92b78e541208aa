"""elbits.train on users' models and data: every likelihood's decoder layout against float64 references, the
budget from the user's own images, eval mode in every evaluation pass, declared decoder outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_runs import QUIET, TinyVAE, binary_images, tiny_model
from torch import nn
from torch.nn import functional as F

from elbits import reference as ref
from elbits.api import LIKELIHOODS
from elbits.experiments.demo import reconstruction_batch
from elbits.report import build_summary, terminal_table
from elbits.report.markdown import render
from elbits.train import Head, TrainConfig, data_budget, rd_pass, train, training_likelihoods
from elbits.train.decoders import KINDS


def test_every_elbits_likelihood_has_a_training_layout():
    assert set(training_likelihoods()) == set(LIKELIHOODS)
    assert set(KINDS) == set(LIKELIHOODS)


def _levels_images(b: int, c: int, side: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 256, (b, c, side, side), generator=g).double().div(255).float()


# (likelihood, kind, channels, settings): each head a decoder can feed, and its float64 reference below.
HEADS = [
    ("bernoulli", "logits", 1, {}),
    ("bernoulli", "probs", 1, {}),
    ("continuous_bernoulli", "logits", 3, {}),
    ("categorical256", "logits", 1, {}),
    ("categorical256", "logits", 3, {}),
    ("categorical256_inplace", "logits", 3, {}),
    ("logistic_mixture", "params", 1, {"components": 2}),
    ("logistic_mixture", "params", 3, {"components": 2}),
    ("discretized_gaussian", "params", 3, {}),
    ("gaussian", "params", 3, {}),
    ("gaussian", "mean", 1, {"scale": 0.2}),
    ("gaussian", "mean", 3, {"scale": 0.2, "discretize": True}),
    ("laplace", "params", 1, {"discretize": True}),
    ("laplace", "mean", 3, {"scale": 0.1}),
]


def _reference_recon(head: Head, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The documented layout read by hand, then elbits.reference in float64."""
    b, c = x.shape[:2]
    levels = (x.double() * 255).round().long()
    name = head.likelihood
    if name == "bernoulli":
        p = out if head.kind == "probs" else torch.sigmoid(out.double())
        return F.binary_cross_entropy(p.double(), x.double(), reduction="none").flatten(1).sum(1)
    if name == "continuous_bernoulli":
        return ref.continuous_bernoulli_nll(out, x)
    if name.startswith("categorical256"):
        # channel l * C + c holds level l of image channel c
        logits = torch.stack([out[:, [lv * c + ch for lv in range(256)]] for ch in range(c)], dim=2)
        return ref.categorical256_nll(logits, levels)
    if name in ("logistic_mixture", "discretized_gaussian"):
        return ref.COLOUR_REFERENCES[name](out, levels.to(torch.uint8), torch.float64)[0]
    mean, log_scale = (out, None) if head.kind == "mean" else (out[:, :c], out[:, c:])
    scale = head.scale if log_scale is None else torch.exp(log_scale.double())
    if head.discretize:
        binned = ref.discretized_gaussian_range_nll if name == "gaussian" else ref.discretized_laplace_nll
        return binned(mean, levels, scale, 0.0, 1.0)
    return (ref.gaussian_nll if name == "gaussian" else ref.laplace_nll)(mean, x, scale)


@pytest.mark.parametrize("name,kind,channels,settings", HEADS)
def test_head_reads_the_documented_layout(name, kind, channels, settings):
    head = Head(name, kind, channels, **settings)
    g = torch.Generator().manual_seed(1)
    b, side = 3, 4
    x = (
        _levels_images(b, channels, side, g)
        if head.eight_bit or name in ("gaussian", "laplace")
        else (torch.rand(b, channels, side, side, generator=g) < 0.5).float()
    )
    out = torch.randn(b, head.out_channels, side, side, generator=g)
    if name.startswith("gaussian") or name.startswith("laplace"):
        out[:, :channels] = out[:, :channels].sigmoid()  # means in the data's range, log-scales as drawn
    if kind == "probs":
        out = out.sigmoid()
    mu, logvar = torch.randn(b, 2, generator=g), torch.randn(b, 2, generator=g)
    head.check(out, x)
    terms = head.terms(out, x, mu, logvar)
    assert terms.recon.double() == pytest.approx(_reference_recon(head, out, x), rel=2e-5, abs=1e-4)
    assert terms.dims == channels * side * side
    m = head.mean_image(out)
    assert m.shape == x.shape and float(m.min()) >= 0 and float(m.max()) <= 1


def test_mean_images_are_the_decoders_means():
    # categorical: all mass on level 255 reads 1; continuous Bernoulli: E[x] by numerical integration.
    head = Head("categorical256", "logits", 1)
    out = torch.full((1, 256, 2, 2), -30.0)
    out[:, 255] = 30.0
    assert torch.allclose(head.mean_image(out), torch.ones(1, 1, 2, 2))
    eta = torch.tensor([-3.0, -1e-4, 0.0, 0.7, 5.0]).view(1, 5, 1, 1)
    xs = torch.linspace(0, 1, 20001, dtype=torch.float64)
    lam = torch.sigmoid(eta.double().flatten())[:, None]
    dens = lam**xs * (1 - lam) ** (1 - xs)
    numeric = torch.trapezoid(xs * dens, xs) / torch.trapezoid(dens, xs)
    got = Head("continuous_bernoulli", "logits", 5).mean_image(eta).flatten().double()
    assert got == pytest.approx(numeric, abs=1e-5)


@pytest.mark.parametrize(
    "likelihood,settings",
    [
        ("bernoulli", {}),
        ("continuous_bernoulli", {}),
        ("categorical256", {}),
        ("categorical256_inplace", {}),
        ("logistic_mixture", {"mixture_components": 2}),
        ("discretized_gaussian", {}),
        ("gaussian", {}),
        ("gaussian", {"scale": 0.3, "discretize": True}),
        ("laplace", {"discretize": True}),
    ],
)
def test_every_likelihood_trains_the_default_model(tmp_path, likelihood, settings):
    r = train(
        TrainConfig(
            steps=2,
            batch_size=8,
            train_size=16,
            z_dim=2,
            log_every=1,
            likelihood=likelihood,
            out_dir=str(tmp_path),
            **settings,
            **QUIET,
        )
    )
    assert r.model.decoder.convT3.out_channels == r.head.out_channels
    assert all(math.isfinite(r.final[k]) for k in ("rate_bits", "distortion_bits"))
    # dSprites is binary, on the 8-bit grid too: the bound exists exactly where D is a code length.
    assert ("bound_slack_bits" in r.final) == r.head.code_length(2)
    assert ("bound_slack_bits" in r.final) == (
        likelihood not in ("continuous_bernoulli", "gaussian") or settings.get("discretize", False)
    )
    assert r.history[-1]["step"] == 2 and r.final["dims"] == 64 * 64


def test_colour_images_train_the_default_model_with_256_levels_per_subpixel(tmp_path):
    from elbits.data.colour_sprites import ColourSpritesDataset, colour_sprites

    data = ColourSpritesDataset(colour_sprites(colours=2, scales=(0,), positions=2))  # 24 RGB images
    r = train(
        TrainConfig(
            steps=1, batch_size=4, z_dim=2, likelihood="categorical256", out_dir=str(tmp_path), **QUIET
        ),
        dataset=data,
    )
    assert r.model.decoder.convT3.out_channels == 256 * 3
    assert r.budget.factor_bits is None and r.budget.levels == 256
    assert r.budget.empirical_bits == pytest.approx(math.log2(24))  # all distinct
    assert r.final["dims"] == 3 * 64 * 64 and "bound_slack_bits" in r.final


def test_budget_is_the_users_images():
    g = torch.Generator().manual_seed(0)
    distinct = _levels_images(4, 1, 4, g)
    counts = [1, 1, 2, 4]
    data = [distinct[i] for i, k in enumerate(counts) for _ in range(k)]
    b = data_budget(data)
    p = np.array(counts) / sum(counts)
    assert b.empirical_bits == pytest.approx(float(-(p * np.log2(p)).sum()))
    assert b.distinct == 4 and b.images == 8 and b.levels == 256 and b.factor_bits is None
    # sum_i H(X_i): per-pixel histograms of the levels, counted here with numpy
    lv = (torch.stack(data).flatten(1).double() * 255).round().long().numpy()
    marg = 0.0
    for col in lv.T:
        q = np.bincount(col, minlength=256) / len(col)
        q = q[q > 0]
        marg -= float((q * np.log2(q)).sum())
    assert b.marginal_sum_bits == pytest.approx(marg)
    assert b.bits == b.empirical_bits and b.to_dict()["budget_bits"] == b.empirical_bits
    assert data_budget(binary_images(16)).levels == 2


def test_budget_of_images_off_any_grid_has_no_marginals():
    g = torch.Generator().manual_seed(0)
    b = data_budget([torch.rand(1, 4, 4, generator=g) for _ in range(8)])
    assert b.levels is None and b.marginal_sum_bits is None and b.empirical_bits == pytest.approx(3.0)
    assert "grid" in b.note


def test_report_of_custom_data_states_its_own_budget(tmp_path):
    data = binary_images(32)
    cfg = TrainConfig(
        steps=2, batch_size=8, log_every=1, out_dir=str(tmp_path), controller="target-rate", **QUIET
    )
    r = train(cfg, model=tiny_model(), dataset=data)
    assert r.budget.factor_bits is None and r.criterion.controller.target_bits == pytest.approx(
        5.0
    )  # log2 32
    s = build_summary(r, cfg)
    md, table = render(s), terminal_table(s, "report.md")
    for text in (md, table):
        assert "19.49" not in text and "factor entropy" not in text
    assert "| empirical H(X) | 5.000 |" in md and "32 images [1, 8, 8] of the given list" in md
    assert "slack" in table


def test_report_of_a_density_decoder_has_no_bound(tmp_path):
    data = binary_images(16)
    cfg = TrainConfig(
        steps=2, batch_size=8, log_every=1, out_dir=str(tmp_path), likelihood="gaussian", scale=0.5, **QUIET
    )
    r = train(cfg, model=tiny_model(decoder_output="mean"), dataset=data)
    assert "bound_slack_bits" not in r.final
    s = build_summary(r, cfg)
    assert "No bound H − D ≤ R" in render(s) and "n/a" in terminal_table(s, "report.md")


class _Recorder(nn.Module):
    """Dropout and BatchNorm in the encoder; records the mode of every call."""

    def __init__(self, split: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 4))
        self.dec = nn.Linear(2, 64)
        self.modes: list[bool] = []
        self.decoder_output = "logits"
        if split:
            self.encode = self._encode
            self.decode = self._decode

    def _encode(self, x):
        self.modes.append(self.training)
        h = self.body(x.flatten(1))
        return h[:, :2], h[:, 2:]

    def _decode(self, z):
        return self.dec(z).view(-1, 1, 8, 8)

    def forward(self, x):
        mu, logvar = self._encode(x)
        return self._decode(mu), mu, logvar


@pytest.mark.parametrize("split", [True, False], ids=["encode-decode", "forward-only"])
def test_every_evaluation_pass_runs_in_eval_mode(tmp_path, split):
    torch.manual_seed(0)
    model = _Recorder(split)
    data = binary_images(32)
    r = train(
        TrainConfig(steps=3, batch_size=8, log_every=1, out_dir=str(tmp_path), **QUIET),
        model=model,
        dataset=data,
    )
    assert model.training  # restored after the final pass
    assert model.modes[:3] == [True] * 3 and not any(model.modes[3:])  # 3 steps trained, the final pass not
    stats = model.body[1].running_mean.clone()
    a = rd_pass(model, data, seed=1, head=r.head).meter.scalars()
    b = rd_pass(model, data, seed=1, head=r.head).meter.scalars()
    assert a == b and torch.equal(stats, model.body[1].running_mean)  # no dropout, no BatchNorm update
    assert r.eval_z == ("sampled from q(z|x)" if split else "as the model's eval-mode forward draws it")
    model.eval()
    reconstruction_batch(model, data, head=r.head)
    assert not model.training


class _SigmoidVAE(TinyVAE):
    def decode(self, z):
        return torch.sigmoid(super().decode(z))


def test_a_probabilities_decoder_is_read_as_probabilities(tmp_path):
    torch.manual_seed(0)
    model = _SigmoidVAE(decoder_output="probs")
    data = binary_images(16)
    r = train(
        TrainConfig(steps=2, batch_size=8, log_every=1, out_dir=str(tmp_path), **QUIET),
        model=model,
        dataset=data,
    )
    assert r.head.kind == "probs"
    # The final D against float64 BCE of the same decoded probabilities (evaluate's seeded z).
    x = torch.stack([d[0] for d in data])
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.eval()
        mu, logvar = model.encode(x)
        p = model.decode(mu + torch.randn(mu.shape, generator=g) * torch.exp(0.5 * logvar))
    d_nats = float(F.binary_cross_entropy(p.double(), x.double(), reduction="sum")) / len(data)
    assert r.final["distortion_nats"] == pytest.approx(d_nats, rel=1e-5)


class _PyTorchVAEStyle(nn.Module):
    """forward returns [recons, input, mu, log_var] with a tanh decoder, as PyTorch-VAE's VanillaVAE."""

    decoder_output = "mean"

    def __init__(self) -> None:
        super().__init__()
        self.enc, self.dec = nn.Linear(64, 4), nn.Sequential(nn.Linear(2, 64), nn.Tanh())

    def forward(self, x):
        h = self.enc(x.flatten(1))
        mu, logvar = h[:, :2], h[:, 2:]
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return [self.dec(z).view_as(x), x, mu, logvar]


def test_pytorch_vae_style_model_trains_as_a_gaussian_mean(tmp_path):
    torch.manual_seed(0)
    r = train(
        TrainConfig(
            steps=2,
            batch_size=8,
            log_every=1,
            likelihood="gaussian",
            scale=0.5,
            out_dir=str(tmp_path),
            **QUIET,
        ),
        model=_PyTorchVAEStyle(),
        dataset=binary_images(16),
    )
    assert r.head.kind == "mean" and r.step == 2 and math.isfinite(r.final["distortion_bits"])
