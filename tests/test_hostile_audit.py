"""Hostile inputs to the unit audit (elbits.calibrate: effective_beta, audit, Weighting, presets, ML scales).

Each case is wrong input, not a bug: it must raise InputError with one line naming what is wrong,
and never return a plausible number.
"""

from __future__ import annotations

import math

import pytest
import torch

from elbits.calibrate import (
    Weighting,
    audit,
    effective_beta,
    error_terms,
    ml_laplace_scale,
    ml_sigma,
    presets,
)
from elbits.errors import InputError
from elbits.terms import ELBOTerms


def _terms(batch: int = 4, z: int = 8, dims: int = 64) -> ELBOTerms:
    recon = torch.linspace(100.0, 200.0, batch, dtype=torch.float64)
    kl = torch.linspace(0.5, 5.0, batch * z, dtype=torch.float64).reshape(batch, z)
    return ELBOTerms(recon, kl, dims)


def _raises(fn, match: str) -> None:
    with pytest.raises(InputError, match=match) as e:
        fn()
    assert "\n" not in str(e.value)


SCALARS = {"rate_nats": 10.0, "distortion_nats": 2000.0, "dims": 4096}


# ---- effective_beta ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "recon_reduction is required"),
        ({"recon_reduction": "avg"}, "recon_reduction must be one of"),
        ({"recon_reduction": "sum", "kl_reduction": "max"}, "kl_reduction must be one of"),
        ({"recon_reduction": "sum", "recon_kind": "bce"}, "recon_kind must be one of"),
        ({"recon_reduction": "sum", "recon_batch": "total"}, "recon_batch must be one of"),
        ({"recon_reduction": "mean"}, "dims is required"),
        ({"recon_reduction": "mean", "dims": 0}, "dims must be a positive count"),
        ({"recon_reduction": "mean", "dims": float("nan")}, "dims must be a positive count"),
        ({"recon_reduction": "mean", "dims": True}, "dims must be a positive count"),
        ({"recon_reduction": "mean", "dims": "4096"}, None),  # a numeric string is a count; not hostile
        ({"recon_reduction": "sum", "kl_reduction": "mean"}, "z_dim is required"),
        ({"recon_reduction": "sum", "recon_batch": "sum"}, "batch_size is required"),
        ({"recon_reduction": "sum", "recon_batch": "sum", "batch_size": -3}, "batch_size must be a positive"),
    ],
)
def test_effective_beta_bad_reductions(kwargs, match) -> None:
    if match is None:
        assert effective_beta(0.8, 0.2, **kwargs) == pytest.approx(1024.0)
        return
    _raises(lambda: effective_beta(0.8, 0.2, **kwargs), match)


@pytest.mark.parametrize(
    "w_recon, w_kl, match",
    [
        (0.0, 1.0, "w_recon must be positive"),
        (-1.0, 1.0, "w_recon must be positive"),
        (float("inf"), 1.0, "w_recon must be positive"),
        (float("nan"), 1.0, "w_recon must be positive"),
        ("one", 1.0, "w_recon must be a number"),
        (True, 1.0, "w_recon must be positive"),
        (1.0, float("nan"), "w_kl must be a finite number"),
        (1.0, None, "w_kl must be a number"),
        (1.0, [1.0], "w_kl must be a number"),
    ],
)
def test_effective_beta_bad_weights(w_recon, w_kl, match) -> None:
    _raises(lambda: effective_beta(w_recon, w_kl, "sum"), match)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"recon_kind": "mse", "sigma": 0.0}, "sigma must be a positive finite"),
        ({"recon_kind": "mse", "sigma": -0.1}, "sigma must be a positive finite"),
        ({"recon_kind": "mse", "sigma": float("inf")}, "sigma must be a positive finite"),
        ({"recon_kind": "mse", "sigma": "max"}, "sigma must be a positive number or 'ml'"),
        ({"recon_kind": "mse", "sigma": True}, "sigma must be a positive finite"),
        ({"recon_kind": "mse", "sigma": "ml", "mse": True}, "positive finite error"),
        ({"recon_kind": "mse", "sigma": "ml"}, "needs either mse="),
        ({"recon_kind": "mse", "sigma": "ml", "mse": 0.0}, "perfect reconstruction"),
        ({"recon_kind": "mse", "sigma": "ml", "mse": -1.0}, "positive finite error"),
        ({"recon_kind": "mse", "sigma": "ml", "mse": float("nan")}, "positive finite error"),
        ({"recon_kind": "mse", "sigma": "ml", "mse": "small"}, "mse must be a number"),
        ({"recon_kind": "mse", "sigma": 0.1, "mse": 0.01}, "pass them with sigma='ml'"),
        ({"recon_kind": "mse", "b": 0.1}, "b= does not apply"),
        ({"recon_kind": "l1", "sigma": 0.1}, "sigma= does not apply"),
        ({"recon_kind": "l1", "b": 0.0}, "b must be a positive finite"),
        ({"recon_kind": "l1", "b": "ml"}, "needs either mae="),
        ({"recon_kind": "nll", "sigma": 0.5}, "sigma= does not apply to recon_kind 'nll'"),
    ],
)
def test_effective_beta_bad_decoder_scales(kwargs, match) -> None:
    _raises(lambda: effective_beta(1.0, 1.0, "sum", **kwargs), match)


# ---- ML scales and error terms -------------------------------------------------------------------


@pytest.mark.parametrize(
    "recon, target, match",
    [
        (torch.zeros(2, 3), torch.zeros(2, 4), "one shape"),
        (torch.zeros(0, 3), torch.zeros(0, 3), "non-empty"),
        (torch.zeros(()), torch.zeros(()), "one shape"),
        ([0.1, 0.2], torch.zeros(2), "must be tensors"),
        (torch.full((2, 3), float("nan")), torch.zeros(2, 3), "must be finite"),
        (torch.zeros(2, 3, dtype=torch.complex64), torch.zeros(2, 3, dtype=torch.complex64), "real tensors"),
        (torch.ones(2, 3), torch.ones(2, 3), "perfect reconstruction"),
    ],
)
def test_ml_sigma_bad_tensors(recon, target, match) -> None:
    _raises(lambda: ml_sigma(recon=recon, target=target), match)


def test_ml_scale_value_and_tensors_both_given() -> None:
    _raises(lambda: ml_laplace_scale(0.1, recon=torch.zeros(2, 3), target=torch.ones(2, 3)), "either mae=")


@pytest.mark.parametrize(
    "mu, logvar, kind, match",
    [
        (torch.zeros(2, 5), torch.zeros(2, 5), "bce", "kind must be 'mse' or 'l1'"),
        (torch.zeros(2, 5), torch.zeros(2, 4), "mse", "mu and logvar must both be"),
        (torch.zeros(3, 5), torch.zeros(3, 5), "mse", "B = 2"),
        (torch.zeros(10), torch.zeros(10), "mse", "mu and logvar must both be"),
        (None, torch.zeros(2, 5), "mse", "must be tensors"),
        (torch.full((2, 5), float("inf")), torch.zeros(2, 5), "mse", "must be finite"),
    ],
)
def test_error_terms_bad_latents(mu, logvar, kind, match) -> None:
    _raises(lambda: error_terms(torch.zeros(2, 3), torch.ones(2, 3), mu, logvar, kind), match)


# ---- audit ------------------------------------------------------------------------------------


def test_audit_without_a_reduction_refuses_to_guess() -> None:
    # The case: a pythae run (BCE summed) read with torch's mean would say beta 16,384.
    _raises(lambda: audit(_terms(), 1, 4), "recon_reduction is required")


@pytest.mark.parametrize("reported, match", [(123.0, "matches no reading"), (float("nan"), "reported_loss")])
def test_audit_reported_loss_that_fits_nothing(reported, match) -> None:
    _raises(lambda: audit(_terms(), 1, 4, reported_loss=reported), match)


def test_audit_reported_loss_that_fits_two_betas() -> None:
    # A collapsed KL (1e-9 nats) adds nothing to the loss: summed or averaged over latents cannot be told.
    t = ELBOTerms(
        torch.full((4,), 150.0, dtype=torch.float64), torch.full((4, 8), 1e-9, dtype=torch.float64), 64
    )
    _raises(lambda: audit(t, 1, 4, reported_loss=150.0), "several readings")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"w_kl": 2.0}, "a Weighting already fixes"),
        ({"recon_reduction": "sum"}, "a Weighting already fixes"),
        ({"sigma": 0.1}, "sigma= does not apply to recon_kind 'nll'"),
        ({"kl_parts": {"tc": 1.0}}, "weighs no part of the KL"),
        ({"kl_parts": [("tc", 1.0)]}, "kl_parts must be a mapping"),
        ({"kl_parts": {"beta": 1.0}}, "kl_parts keys must be among"),
        ({"kl_parts": {"tc": float("nan")}}, "kl_parts\\['tc'\\] must be a finite number"),
    ],
)
def test_audit_with_a_weighting_bad_extras(kwargs, match) -> None:
    w = Weighting(1.0, 4.0, "sum")
    _raises(lambda: audit(_terms(), w, **kwargs), match)


def test_audit_plain_weights_without_w_kl() -> None:
    _raises(lambda: audit(_terms(), 1.0), "w_kl is required")


def test_audit_ml_sigma_without_dims() -> None:
    scalars = {"rate_nats": 10.0, "distortion_nats": 20.0}
    _raises(lambda: audit(scalars, 1.0, 1.0, "sum", recon_kind="mse", sigma="ml"), "pass dims=")


def test_audit_batch_sum_from_batch_means_without_batch_size() -> None:
    _raises(
        lambda: audit(SCALARS, 1.0, 1.0, "sum", recon_batch="sum", kl_batch="sum"), "batch_size is required"
    )


def test_audit_per_sample_capacity_from_batch_means() -> None:
    w = presets.pythae("DisentangledBetaVAE", reconstruction_loss="bce")
    _raises(lambda: audit(SCALARS, w, z_dim=10), "needs each sample's KL")


def test_audit_source_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="expected ELBOTerms"):
        audit(3.0, 1.0, 1.0, "sum")


# ---- Weighting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"capacity": -1.0}, "capacity must be >= 0"),
        ({"capacity": float("inf")}, "capacity must be a finite number"),
        ({"capacity_per_sample": True}, "needs a capacity"),
        ({"parts": {"kl": 1.0}}, "a KL part must be one of"),
        ({"parts": (("tc", 1.0), ("tc", 2.0))}, "names a KL part twice"),
        ({"parts": {"tc": "six"}}, "parts\\['tc'\\] must be a number"),
    ],
)
def test_weighting_bad_fields(kwargs, match) -> None:
    _raises(lambda: Weighting(1.0, 1.0, "sum", **kwargs), match)


# ---- presets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: presets.pythae("VQVAE"), "model must be one of"),
        (lambda: presets.pythae("VAE", reconstruction_loss="l1"), "reconstruction_loss must be one of"),
        (lambda: presets.pythae("VAE", beta=4.0), "VAE has no setting \\['beta'\\]"),
        (lambda: presets.pythae("BetaVAE", C=10.0), "BetaVAE has no setting \\['C'\\]"),
        (lambda: presets.pythae("DisentangledBetaVAE", epoch=-1), "epoch must be >= 0"),
        (lambda: presets.pythae("BetaVAE", beta=float("nan")), "w_kl must be a finite number"),
        (lambda: presets.disentangling_vae("betaX"), "loss must be one of"),
        (lambda: presets.disentangling_vae("betaH", rec_dist="poisson"), "rec_dist must be one of"),
        (lambda: presets.disentangling_vae("betaB", step=-5), "step must be >= 0"),
        (lambda: presets.disentangling_vae("betaB", reg_anneal=float("nan")), "reg_anneal must be a finite"),
        (lambda: presets.disentangling_vae_from_specs({"rec_dist": "bernoulli"}), "with its 'loss'"),
        (lambda: presets.disentangling_vae_from_specs([("loss", "betaH")]), "mapping of a disentangling-vae"),
        (lambda: presets.pytorch_vae("WAE"), "model must be 'VanillaVAE', 'BetaVAE' or a config"),
        (lambda: presets.pytorch_vae("VanillaVAE", beta=4.0), "VanillaVAE has no setting \\['beta'\\]"),
        (lambda: presets.pytorch_vae("BetaVAE", loss_type="C"), "loss_type must be one of"),
        (lambda: presets.pytorch_vae("bhvae", num_iter=10), "num_iter only sets the capacity"),
        (lambda: presets.pytorch_vae("BetaVAE", Capacity_max_iter=0), "Capacity_max_iter must be positive"),
        (lambda: presets.pytorch_vae("vae", kld_weight="tiny"), "kld_weight must be a number"),
    ],
)
def test_presets_bad_settings(make, match) -> None:
    _raises(make, match)


def test_preset_values_stay_finite_at_step_zero() -> None:
    # Step 0 of an annealed beta is beta 0: a loss with no KL term, which the audit must say, not hide.
    a = audit(_terms(), presets.disentangling_vae("betaH", step=0))
    assert a.beta == 0.0 and "rate is cheap" in a.verdict and math.isfinite(a.loss)
