"""Beta controllers and their use through ELBOLoss (elbits.calibrate.controllers)."""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable

import pytest
import torch
from torch import nn

from elbits.calibrate import GECO, CapacityAnnealing, Controller, FixedBeta, TargetRate
from elbits.loss import ELBOLoss
from elbits.terms import ELBOTerms
from elbits.units import LN2, Quantity

# Toy model with a known answer: the trained model sits at the optimum of D + beta R on the
# frontier D = A exp(-R / K) (nats), i.e. R*(beta) = K ln(A / (K beta)), D*(beta) = K beta.
# It follows that optimum with a lag, and the minibatch figures carry noise.
A, K = 400.0, 6.0


def optimum(beta: float) -> tuple[float, float]:
    # A negative weight on R (capacity annealing below C) rewards rate: cap it.
    r = 60.0 if beta <= 0 else min(60.0, max(0.0, K * math.log(A / (K * beta))))
    return r, A * math.exp(-r / K)


class Toy:
    def __init__(self, seed: int = 0, lag: float = 0.2, noise: float = 0.02) -> None:
        self.rng = random.Random(seed)
        self.r, self.lag, self.noise = 40.0, lag, noise

    def batch(self, beta: float) -> dict[str, float]:
        target, _ = optimum(beta)
        self.r += self.lag * (target - self.r)
        r = self.r * (1 + self.noise * self.rng.gauss(0, 1))
        d = A * math.exp(-self.r / K) * (1 + self.noise * self.rng.gauss(0, 1))
        return {"rate_nats": r, "distortion_nats": d, "distortion_bits_per_dim": d / LN2 / 100}


def run(ctrl: Controller, steps: int, toy: Toy) -> list[float]:
    betas = []
    for _ in range(steps):
        betas.append(ctrl.step(toy.batch(ctrl.beta)))
    return betas


# ---- each controller moves beta the right way and converges ----------------------------------


def test_fixed_beta() -> None:
    c = FixedBeta(4.0)
    assert run(c, 5, Toy()) == [4.0] * 5
    assert FixedBeta.from_weights(0.8, 0.2, recon_reduction="mean", dims=4096).beta == pytest.approx(1024.0)


def test_target_rate_converges_to_known_beta() -> None:
    target_bits = 19.49  # H(X) of dSprites
    c = TargetRate(target_bits, lr=0.05)
    toy = Toy()
    betas = run(c, 1500, toy)
    # The toy starts at R = 40 nats > 13.5 nats target: beta must rise first.
    assert betas[10] > 1.0
    beta_star = (A / K) * math.exp(-target_bits * LN2 / K)
    assert c.beta == pytest.approx(beta_star, rel=0.05)
    assert toy.r / LN2 == pytest.approx(target_bits, rel=0.02)
    assert c.target_bits == pytest.approx(target_bits)


def test_target_rate_lowers_beta_when_rate_is_low() -> None:
    c = TargetRate(target_nats=30.0, beta_init=8.0)
    c.step({"rate_nats": 5.0, "distortion_nats": 100.0})
    assert c.beta < 8.0


def test_geco_converges_to_known_beta() -> None:
    # D*(beta) = K beta, so the distortion target D = 30 nats needs beta = 5.
    c = GECO(target_nats=30.0, lr=0.05, ema=0.9)
    toy = Toy()
    betas = run(c, 3000, toy)
    assert betas[5] > 1.0  # D starts below target: the multiplier falls, beta rises
    assert c.beta == pytest.approx(30.0 / K, rel=0.05)
    assert c.lambda_ == pytest.approx(1.0 / c.beta)


def test_geco_bits_per_dim_target() -> None:
    c = GECO(target_bits_per_dim=30.0 / LN2 / 100, lr=0.05, ema=0.9)
    run(c, 3000, Toy())
    assert c.beta == pytest.approx(30.0 / K, rel=0.05)
    with pytest.raises(ValueError, match="dims"):
        GECO(target_bits_per_dim=0.1).step({"rate_nats": 1.0, "distortion_nats": 1.0})


def test_geco_raises_beta_pressure_when_distortion_too_high() -> None:
    c = GECO(target_bits=10.0)
    c.step({"rate_bits": 1.0, "distortion_bits": 50.0})
    assert c.beta < 1.0 and c.lambda_ > 1.0


def test_capacity_tracks_schedule() -> None:
    c = CapacityAnnealing(c_max_bits=20.0, steps=400, gamma=50.0)
    assert c.capacity_nats == 0.0
    # The "model" descends the capacity loss in R with plain gradient steps.
    r = 0.0
    for _ in range(600):
        c_now = c.capacity_nats
        grad = -(A / K) * math.exp(-r / K) + c.gamma * math.copysign(1.0, r - c_now)
        r = max(0.0, r - 0.01 * grad)
        c.step({"rate_nats": r, "distortion_nats": A * math.exp(-r / K)})
    assert c.capacity_bits == pytest.approx(20.0)
    assert r / LN2 == pytest.approx(20.0, rel=0.05)
    c.step({"rate_nats": 100.0, "distortion_nats": 1.0})
    assert c.beta == 50.0  # above capacity: the rate is pushed down
    c.step({"rate_nats": 1.0, "distortion_nats": 1.0})
    assert c.beta == -50.0  # below: pulled up


def test_capacity_burgess_units() -> None:
    c = CapacityAnnealing.burgess_dsprites()
    assert c.c_max_nats == 25.0 and c.anneal_steps == 100_000 and c.gamma == 1000.0
    assert CapacityAnnealing(c_max_bits=25.0 / LN2).c_max_nats == pytest.approx(25.0)
    assert CapacityAnnealing(c_max_bits=Quantity(25.0, "nats")).c_max_nats == pytest.approx(25.0)
    with pytest.raises(ValueError, match="exactly one"):
        CapacityAnnealing(c_max_bits=1.0, c_max_nats=1.0)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_capacity_loss_is_batch_abs(reduction: str) -> None:
    c = CapacityAnnealing(c_max_nats=10.0, steps=10, gamma=7.0)
    for _ in range(5):
        c.step({"rate_nats": 1.0, "distortion_nats": 1.0})  # C = 5 nats
    recon = torch.tensor([3.0, 4.0, 5.0], dtype=torch.float64)
    for kl_vals in ([1.0, 2.0, 3.0], [6.0, 8.0, 1.0]):
        kl = torch.tensor(kl_vals, dtype=torch.float64, requires_grad=True)
        kl_ref = kl.detach().clone().requires_grad_(True)
        per = c.loss(recon, kl)
        got = per.mean() if reduction == "mean" else per.sum()
        n = 1 if reduction == "mean" else 3
        ref = n * (recon.mean() + 7.0 * (kl_ref.mean() - 5.0).abs())
        assert float(got.detach()) == pytest.approx(float(ref.detach()))
        got.backward()
        ref.backward()
        assert torch.allclose(kl.grad, kl_ref.grad)


# ---- checkpoints: save/load mid-run gives bit-identical betas --------------------------------

FACTORIES: dict[str, Callable[[], Controller]] = {
    "fixed": lambda: FixedBeta(3.0),
    "capacity": lambda: CapacityAnnealing(c_max_bits=20.0, steps=50, gamma=10.0),
    "geco": lambda: GECO(target_nats=30.0, lr=0.05),
    "target_rate": lambda: TargetRate(19.49, lr=0.05),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_resume_is_bit_identical(name: str) -> None:
    ctrl, toy = FACTORIES[name](), Toy(seed=3)
    run(ctrl, 40, toy)
    buf = io.BytesIO()
    torch.save({"controller": ctrl.state_dict(), "toy": (toy.r, toy.rng.getstate())}, buf)
    expected = run(ctrl, 60, toy)

    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    fresh = FACTORIES[name]()
    fresh.load_state_dict(ckpt["controller"])
    toy2 = Toy()
    toy2.r = ckpt["toy"][0]
    toy2.rng.setstate(ckpt["toy"][1])
    assert run(fresh, 60, toy2) == expected  # exact float equality


def test_state_carries_settings_and_checks_type() -> None:
    a = TargetRate(19.49, lr=0.05)
    b = TargetRate(5.0, lr=0.5)
    b.load_state_dict(a.state_dict())
    assert b.target_bits == pytest.approx(19.49) and b.lr == 0.05
    with pytest.raises(ValueError, match="TargetRate"):
        GECO(target_bits=1.0).load_state_dict(a.state_dict())


def test_geco_ema_is_state() -> None:
    # Dropping the EMA on resume (a known bug in public code) changes what follows.
    ctrl, toy = GECO(target_nats=30.0, lr=0.05), Toy(seed=1)
    run(ctrl, 30, toy)
    state = ctrl.state_dict()
    assert state["c_ema"] is not None and state["lambda_"] != 1.0
    broken = GECO(target_nats=30.0, lr=0.05)
    broken.load_state_dict({**state, "c_ema": None})
    obs = toy.batch(ctrl.beta)
    assert broken.step(obs) != ctrl.step(obs)


# ---- through ELBOLoss ------------------------------------------------------------------------


class TinyVAE(nn.Module):
    def __init__(self, dims: int = 64, z: int = 4) -> None:
        super().__init__()
        self.enc = nn.Linear(dims, 2 * z)
        self.dec = nn.Linear(z, dims)

    def forward(self, x: torch.Tensor, step: int) -> tuple[torch.Tensor, ...]:
        mu, logvar = self.enc(x).chunk(2, dim=1)
        g = torch.Generator().manual_seed(step)  # per-step noise so a resumed run sees the same draws
        z = mu + torch.randn(mu.shape, generator=g) * (0.5 * logvar).exp()
        return self.dec(z), mu, logvar


DATA = (torch.rand(32, 64, generator=torch.Generator().manual_seed(0)) < 0.3).float()


def train(model: TinyVAE, opt: torch.optim.Optimizer, crit: ELBOLoss, start: int, n: int) -> list[float]:
    betas = []
    for step in range(start, start + n):
        logits, mu, logvar = model(DATA, step)
        loss = crit(logits, DATA, mu, logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()
        betas.append(crit.beta)
    return betas


def fresh(ctrl: Controller) -> tuple[TinyVAE, torch.optim.Optimizer, ELBOLoss]:
    torch.manual_seed(0)
    model = TinyVAE()
    return model, torch.optim.Adam(model.parameters(), lr=1e-2), ELBOLoss(controller=ctrl)


def test_elboloss_uses_controller_and_resumes_bit_identically() -> None:
    model, opt, crit = fresh(TargetRate(target_bits=0.5, lr=0.2, ema=0.0))
    train(model, opt, crit, 0, 15)
    # Rate of an untrained encoder is well above half a bit: beta went up.
    assert crit.beta > 1.0
    assert "controller_state._extra_state" in crit.state_dict()
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "crit": crit.state_dict()}, buf)
    expected = train(model, opt, crit, 15, 15)

    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    model2, opt2, crit2 = fresh(TargetRate(target_bits=7.0))
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["opt"])
    crit2.load_state_dict(ckpt["crit"])
    assert train(model2, opt2, crit2, 15, 15) == expected


def test_elboloss_beta_is_current_then_updated() -> None:
    ctrl = TargetRate(target_nats=1.0, lr=0.5, ema=0.0)
    crit = ELBOLoss(controller=ctrl)
    logits = torch.zeros(2, 16, requires_grad=True)
    target = torch.ones(2, 16)
    mu, logvar = torch.full((2, 3), 2.0), torch.zeros(2, 3)  # R = 6 nats per sample
    loss = crit(logits, target, mu, logvar)
    terms: ELBOTerms = crit.last  # type: ignore[assignment]
    # This batch was weighted with beta = 1; the update lands for the next one.
    assert float(loss.detach()) == pytest.approx(float(terms.recon.mean() + 1.0 * terms.kl_total.mean()))
    assert crit.beta == 1.0 and ctrl.beta == pytest.approx(math.exp(0.5 * 5.0))
    assert ctrl.steps == 1


def test_elboloss_controller_does_not_step_in_eval() -> None:
    ctrl = TargetRate(target_nats=1.0)
    crit = ELBOLoss(controller=ctrl)
    args = (torch.zeros(2, 16), torch.ones(2, 16), torch.ones(2, 3), torch.zeros(2, 3))
    with torch.no_grad():
        crit(*args)
    crit.eval()
    crit(*args)
    assert ctrl.steps == 0


def test_elboloss_capacity() -> None:
    ctrl = CapacityAnnealing(c_max_nats=100.0, steps=10, gamma=3.0)
    crit = ELBOLoss(controller=ctrl, reduction="sum")
    args = (torch.zeros(2, 16), torch.ones(2, 16), torch.ones(2, 3), torch.zeros(2, 3))
    loss = crit(*args)
    t: ELBOTerms = crit.last  # type: ignore[assignment]
    assert float(loss) == pytest.approx(2 * float(t.recon.mean() + 3.0 * t.kl_total.mean().abs()))


def test_elboloss_without_controller_is_unchanged() -> None:
    crit = ELBOLoss(beta=2.0)
    assert crit.state_dict() == {} and crit.controller is None
    crit.load_state_dict({}, strict=True)
    with pytest.raises(ValueError, match="either beta or controller"):
        ELBOLoss(beta=2.0, controller=FixedBeta(1.0))
    with pytest.raises(TypeError, match="controller"):
        ELBOLoss(controller=object())  # type: ignore[arg-type]


def test_elboloss_controller_under_torch_compile() -> None:
    # The controller part runs eagerly, so a compiled criterion sees each new beta.
    def betas(compiled: bool) -> list[tuple[float, float]]:
        crit = ELBOLoss(controller=TargetRate(target_nats=1.0, lr=0.5, ema=0.0))
        f = torch.compile(crit, backend="eager") if compiled else crit
        x, mu, logvar = torch.ones(2, 16), torch.ones(2, 3), torch.zeros(2, 3)
        out = []
        for _ in range(5):
            loss = f(torch.zeros(2, 16, requires_grad=True), x, mu, logvar)
            out.append((float(loss.detach()), crit.beta))
        return out

    assert betas(compiled=True) == betas(compiled=False)
