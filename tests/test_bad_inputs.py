"""Bad input gets an early, clear error naming the argument."""

import pytest
import torch

import elbits


def ok(b=2, n=6, z=3):
    return torch.randn(b, n), torch.rand(b, n), torch.randn(b, z), torch.randn(b, z)


def test_shape_mismatch_logits_target():
    x, t, m, lv = ok()
    with pytest.raises(ValueError, match="target must have the shape of logits"):
        elbits.elbo_terms(x, t[:, :5], m, lv)


def test_mu_logvar_mismatch_and_batch_mismatch():
    x, t, m, lv = ok()
    with pytest.raises(ValueError, match="mu and logvar must have the same shape"):
        elbits.elbo_terms(x, t, m, lv[:, :2])
    with pytest.raises(ValueError, match="batch size 1 does not match the batch size 2"):
        elbits.elbo_terms(x, t, m[:1], lv[:1])
    with pytest.raises(ValueError, match=r"mu must be \[B, Z\]"):
        elbits.elbo_terms(x, t, m[0], lv[0])


@pytest.mark.parametrize("name", ["logits", "target", "mu", "logvar"])
def test_wrong_dtypes(name):
    args = dict(zip(["logits", "target", "mu", "logvar"], ok()))
    args[name] = args[name].to(torch.int32)
    with pytest.raises(TypeError, match=f"{name} must have dtype in"):
        elbits.elbo_terms(**args)


def test_not_a_tensor():
    x, t, m, lv = ok()
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        elbits.elbo_terms(x, t.tolist(), m, lv)


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_target_out_of_range(bad):
    x, t, m, lv = ok()
    t[1, 3] = bad
    with pytest.raises(ValueError, match=r"target has values outside \[0, 1\]"):
        elbits.elbo_terms(x, t, m, lv)


def test_uint8_target_above_one():
    x, _, m, lv = ok()
    t = torch.zeros(2, 6, dtype=torch.uint8)
    t[0, 0] = 255
    with pytest.raises(ValueError, match="target has values outside"):
        elbits.elbo_terms(x, t, m, lv)


@pytest.mark.parametrize(
    "name,value",
    [("logits", float("nan")), ("logits", float("inf")), ("mu", float("nan")), ("logvar", float("-inf"))],
)
def test_non_finite_named(name, value):
    args = dict(zip(["logits", "target", "mu", "logvar"], ok()))
    args[name][0, 1] = value
    with pytest.raises(ValueError, match=f"{name} contain"):
        elbits.elbo_terms(**args)


def test_check_finite_off_lets_nan_through():
    x, t, m, lv = ok()
    x[0, 0] = float("nan")
    terms = elbits.elbo_terms(x, t, m, lv, check_finite=False)
    assert torch.isnan(terms.recon[0]) and torch.isfinite(terms.recon[1])


def test_empty_batch_and_empty_sample():
    x, t, m, lv = ok()
    with pytest.raises(ValueError, match="empty batch"):
        elbits.elbo_terms(x[:0], t[:0], m[:0], lv[:0])
    with pytest.raises(ValueError, match="no elements per sample"):
        elbits.elbo_terms(x[:, :0], t[:, :0], m, lv)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        elbits.elbo_terms(x[0], t[0], m, lv)


def test_different_devices():
    x, t, m, lv = ok()
    with pytest.raises(ValueError, match="target is on meta but logits is on cpu"):
        elbits.elbo_terms(x, t.to("meta"), m, lv)


def test_unknown_likelihood_and_loss_arguments():
    x, t, m, lv = ok()
    with pytest.raises(ValueError, match="likelihood must be one of"):
        elbits.elbo_terms(x, t, m, lv, likelihood="gaussian-mse")
    with pytest.raises(ValueError, match="reduction must be"):
        elbits.ELBOLoss(reduction="none")
    with pytest.raises(ValueError, match="beta must be"):
        elbits.ELBOLoss(beta=-1)


def test_loss_overflow_is_named():
    # finite logits whose per-sample sum leaves float32's range
    x = torch.full((1, 4), 3e38)
    with pytest.raises(ValueError, match="overflowed float32"):
        elbits.elbo_terms(x, torch.zeros(1, 4), torch.zeros(1, 1), torch.zeros(1, 1))
