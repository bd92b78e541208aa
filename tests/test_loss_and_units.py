"""ELBOLoss, ELBOTerms conversions and the units module."""

import math

import pytest
import torch

import elbits
from elbits import units


def batch(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, 1, 8, 8, generator=g),
        (torch.rand(b, 1, 8, 8, generator=g) < 0.5).to(torch.uint8),
        torch.randn(b, 5, generator=g),
        torch.randn(b, 5, generator=g),
    )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_is_recon_plus_beta_kl(reduction):
    x, t, mu, lv = batch()
    crit = elbits.ELBOLoss(beta=4.0, reduction=reduction)
    loss = crit(x, t, mu, lv)
    want = elbits.reference.elbo_terms(x, t, mu, lv)
    per_sample = want.recon + 4.0 * want.kl.sum(1)
    expected = per_sample.mean() if reduction == "mean" else per_sample.sum()
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert crit.last is not None and crit.last.recon.grad_fn is None
    torch.testing.assert_close(crit.last.recon.double(), want.recon, rtol=1e-6, atol=1e-5)


def test_terms_conversions():
    x, t, mu, lv = batch()
    terms = elbits.elbo_terms(x, t, mu, lv)
    assert terms.dims == 64
    torch.testing.assert_close(terms.recon_bits, terms.recon / math.log(2))
    torch.testing.assert_close(terms.kl_total, terms.kl.sum(1))
    torch.testing.assert_close(terms.kl_total_bits, terms.kl.sum(1) / math.log(2))
    torch.testing.assert_close(terms.recon_bits_per_dim, terms.recon / math.log(2) / 64)
    torch.testing.assert_close(terms.nelbo_bits_per_dim, (terms.recon + terms.kl_total) / math.log(2) / 64)


def test_units():
    assert units.nats_to_bits(math.log(2)) == pytest.approx(1.0)
    assert units.bits_to_nats(1.0) == pytest.approx(math.log(2))
    assert units.bits_per_dim(4096 * math.log(2), 4096) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="dims must be a positive"):
        units.bits_per_dim(1.0, 0)
    q = units.Quantity(19.49, "bits")
    assert q.nats == pytest.approx(19.49 * math.log(2))
    assert q.to("nats").bits == pytest.approx(19.49)
    assert "bits/sample" in f"{q}" and "nats" in str(q)
    with pytest.raises(ValueError, match="unit must be one of"):
        units.Quantity(1.0, "bytes")


def test_loss_trains_a_parameter():
    # end to end through autograd: gradient descent on free logits lowers the loss
    x, t, mu, lv = batch()
    params = [p.clone().requires_grad_(True) for p in (x, mu, lv)]
    crit = elbits.ELBOLoss()
    opt = torch.optim.SGD(params, lr=0.5)
    first = None
    for _ in range(20):
        opt.zero_grad()
        loss = crit(params[0], t, params[1], params[2])
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    x, t, mu, lv = batch()

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dec = torch.nn.Linear(5, 64)

        def forward(self, z):
            return self.dec(z).view(-1, 1, 8, 8)

    model = Tiny()
    crit = elbits.ELBOLoss(beta=2.0)

    def step(mu, lv):
        return crit(model(mu), t, mu, lv)

    mu_e = mu.clone().requires_grad_(True)
    eager = step(mu_e, lv)
    eager.backward()
    grads_e = [p.grad.clone() for p in model.parameters()] + [mu_e.grad.clone()]
    model.zero_grad()
    mu_c = mu.clone().requires_grad_(True)
    compiled = torch.compile(step, fullgraph=True)(mu_c, lv)
    compiled.backward()
    grads_c = [p.grad.clone() for p in model.parameters()] + [mu_c.grad.clone()]
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(grads_c, grads_e):
        torch.testing.assert_close(a, b)
