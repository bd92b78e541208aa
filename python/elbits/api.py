"""elbo_terms: the public entry point. It resolves the likelihood and calls its family module
(:mod:`elbits.ops` for the fused kernels, :mod:`elbits.likelihoods` for the PyTorch ones)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import InputError
from .likelihoods.continuous import continuous_terms
from .likelihoods.probs import bernoulli_probs_terms
from .ops.bernoulli import bernoulli_terms
from .ops.categorical import categorical256_inplace_terms, categorical256_terms
from .ops.continuous_bernoulli import continuous_bernoulli_terms
from .ops.discretized_gaussian import discretized_gaussian_terms
from .ops.logistic_mixture import logistic_mixture_terms
from .terms import ELBOTerms

Likelihood = Callable[..., ELBOTerms]


def _continuous(name: str) -> Likelihood:
    def impl(mean, target, mu, logvar, check_finite: bool, recon_grad_hint: float | None = None, **settings):
        return continuous_terms(name, mean, target, mu, logvar, check_finite, recon_grad_hint, **settings)

    impl.__name__ = impl.__qualname__ = f"{name}_terms"
    return impl


# Decoders with a density (elbits/likelihoods/continuous.py): they take scale/log_scale/discretize.
CONTINUOUS = ("gaussian", "laplace")
# Each likelihood's entry point: (params, target, mu, logvar, check_finite, recon_grad_hint=, ...)
# -> ELBOTerms. Formulas, layouts and numerics: docs/likelihoods.md.
LIKELIHOODS: dict[str, Likelihood] = {
    "bernoulli": bernoulli_terms,
    "categorical256": categorical256_terms,
    "categorical256_inplace": categorical256_inplace_terms,
    "logistic_mixture": logistic_mixture_terms,
    "discretized_gaussian": discretized_gaussian_terms,
    "continuous_bernoulli": continuous_bernoulli_terms,
    **{name: _continuous(name) for name in CONTINUOUS},
}
# likelihoods whose backward can write the gradient into the parameters (inplace_grad=True)
_INPLACE = ("categorical256", "categorical256_inplace")
# what the first argument may hold: input="probs" is a sigmoid decoder's output
INPUTS = ("logits", "probs")


def resolve_likelihood(likelihood: str, inplace_grad: bool = False, input: str = "logits") -> Likelihood:
    """The implementation of ``likelihood`` (with its gradient written into the parameters when
    ``inplace_grad``; from probabilities for ``input="probs"``); an :class:`InputError` naming the
    choices otherwise."""
    if not isinstance(likelihood, str) or likelihood not in LIKELIHOODS:
        raise InputError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got {likelihood!r}")
    if input not in INPUTS:
        raise InputError(f"input must be one of {list(INPUTS)} (what the decoder outputs), got {input!r}")
    if not isinstance(inplace_grad, bool):
        raise InputError(f"inplace_grad must be True or False, got {inplace_grad!r}")
    if input == "probs":
        if likelihood != "bernoulli":
            raise InputError(
                "input='probs' is for likelihood 'bernoulli' (a decoder that ends in a sigmoid), not "
                f"{likelihood!r}"
            )
        if inplace_grad:
            raise InputError("inplace_grad=True is for logits (categorical256), not input='probs'")
        return bernoulli_probs_terms
    if inplace_grad:
        if likelihood not in _INPLACE:
            raise InputError(
                f"inplace_grad=True is available for likelihood {sorted(_INPLACE)}, not {likelihood!r}"
            )
        return LIKELIHOODS["categorical256_inplace"]
    return LIKELIHOODS[likelihood]


def likelihood_settings(likelihood: str, scale=None, log_scale=None, discretize=None) -> dict:
    """The keyword settings ``likelihood`` takes (``scale``, ``log_scale``, ``discretize`` for the
    continuous ones); an :class:`InputError` for a setting it has no use for."""
    if likelihood in CONTINUOUS:
        return {"scale": scale, "log_scale": log_scale, "discretize": discretize}
    given = [
        n
        for n, val in (("scale", scale), ("log_scale", log_scale), ("discretize", discretize))
        if val is not None
    ]
    if given:
        raise InputError(f"{', '.join(given)} is for likelihoods {list(CONTINUOUS)}, not {likelihood!r}")
    return {}


def elbo_terms(
    logits: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    likelihood: str = "bernoulli",
    *,
    check_finite: bool = True,
    recon_grad_hint: float | None = None,
    inplace_grad: bool = False,
    input: str = "logits",
    scale: float | torch.Tensor | None = None,
    log_scale: torch.Tensor | None = None,
    discretize: tuple[float, float] | None = None,
) -> ELBOTerms:
    """Reconstruction NLL and Gaussian KL of a batch, in nats per sample.

    - ``logits``: ``[B, ...]`` decoder output (float32/float16/bfloat16/float64): logits,
      or probabilities with ``input="probs"``, or the mean for ``"gaussian"``/``"laplace"``.
    - ``target``: the data; for ``"bernoulli"`` the shape of ``logits``, float in
      [0, 1] (soft targets allowed), uint8 {0, 1} or bool.
    - ``mu``, ``logvar``: ``[B, Z]`` parameters of q(z|x) = N(mu, exp(logvar)).
    - ``check_finite``: raise ``ValueError`` naming the tensor when an input holds
      NaN/Inf or a target is out of range (found in the same pass, no extra cost).
    - ``recon_grad_hint``: a speed hint, never a change in results: the gradient
      d loss / d recon[b] backward is expected to bring (default ``1/B``, a batch
      mean, for float32/float64 parameters). Likelihoods whose forward stores the
      gradient (all fused ones but categorical-256) store it already times this
      value, so a right guess leaves backward nothing to do and a wrong one costs
      one rescaling pass, as without a hint.
    - ``inplace_grad`` (``"categorical256"`` only): backward writes d loss / d logits
      into the logits tensor itself and hands that on as the gradient, so no
      logits-sized gradient is allocated; the logits' values are gone after
      backward (autograd raises if another op saved them for its own backward).
    - ``input="probs"`` (``"bernoulli"`` only): ``logits`` holds probabilities (a sigmoid
      decoder); recon is ``F.binary_cross_entropy`` summed per sample, whose logs are clamped
      at -100: exactly 0 or 1 against the other target counts 100 nats
      (:class:`elbits.likelihoods.SaturationWarning`). Pass logits where you can.
    - ``scale`` / ``log_scale`` (``"gaussian"``: sigma, ``"laplace"``: b, in the data's
      units; exactly one): a float > 0, or a tensor broadcastable to the mean (a learned
      scalar, per channel, per subpixel); ``log_scale`` is its log, a tensor.
    - ``discretize`` (``"gaussian"``/``"laplace"``): ``None`` for the density NLL (nats that
      depend on the data's units), or ``(lo, hi)`` for 8-bit data whose 256 levels span
      [lo, hi]: recon is then the code length of the levels (target uint8 levels, or floats
      on that grid). See docs/likelihoods-continuous.md.

    Returns :class:`ELBOTerms` with ``recon`` ``[B]`` (nats, summed over each
    sample's dimensions) and ``kl`` ``[B, Z]`` (nats); float32 unless an input is
    float64. Differentiable w.r.t. ``logits``, ``mu``, ``logvar`` (and a scale tensor).
    """
    impl = resolve_likelihood(likelihood, inplace_grad, input)
    settings = likelihood_settings(likelihood, scale, log_scale, discretize)
    return impl(logits, target, mu, logvar, check_finite, recon_grad_hint=recon_grad_hint, **settings)
