"""ELBOLoss: a drop-in torch.nn.Module for the negative ELBO in nats per sample."""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, Optional, Union

import torch
from torch import nn

from .api import CONTINUOUS, elbo_terms, likelihood_settings, resolve_likelihood
from .errors import InputError
from .likelihoods.continuous import check_discretize, check_scale_arg
from .ops.device_flags import check_device_errors
from .terms import ELBOTerms

if TYPE_CHECKING:
    from .calibrate.controllers import Controller


def _check_beta(beta: object) -> float:
    """beta as a float: a finite real number >= 0 (a bool, string, NaN or inf is an InputError)."""
    if isinstance(beta, torch.Tensor) and beta.numel() == 1 and beta.is_floating_point():
        beta = beta.item()
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not math.isfinite(beta) or beta < 0:
        raise InputError(
            f"beta must be a finite number >= 0 (nats of reconstruction per nat of KL), got {beta!r}"
        )
    return float(beta)


class _ControllerState(nn.Module):
    """Carries a controller's state in the criterion's ``state_dict`` (key ``controller_state._extra_state``).

    A submodule rather than ``get_extra_state`` on ELBOLoss itself, so a criterion
    without a controller keeps an empty state_dict and old checkpoints load strictly.
    """

    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller

    def get_extra_state(self) -> Any:
        return self.controller.state_dict()

    def set_extra_state(self, state: Any) -> None:
        self.controller.load_state_dict(state)


class ELBOLoss(nn.Module):
    """``loss = crit(logits, target, mu, logvar)``: ``recon + beta * kl_total``, nats per sample.

    - ``likelihood``: see :func:`elbits.elbo_terms`.
    - ``beta``: weight of the KL in nats of reconstruction per nat of KL; both terms
      are per-sample sums, so beta = 1 is the ELBO whatever the image size.
    - ``reduction``: ``"mean"`` over the batch (nats per sample) or ``"sum"``
      (nats per batch).

    - ``controller``: a beta controller from :mod:`elbits.calibrate` (instead of
      ``beta``). Each training forward applies the controller's *current* state
      (``controller.loss``, normally ``recon + beta * kl_total``), then updates it with
      this batch's detached terms, so the next batch sees the new beta. It steps only
      while ``crit.training`` and grad is enabled (validation under ``no_grad`` or
      ``crit.eval()`` leaves it alone). ``crit.beta`` is the beta of the last forward.
      Its state is part of ``crit.state_dict()``.

    - ``check_every``: on CUDA, input problems (NaN/Inf, targets out of range) are
      recorded on the device without a sync; every ``check_every`` calls the loss reads
      them (one sync) and raises. On the CPU they raise at once. Under ``torch.compile``
      the loss does not read them (the read is a sync and a graph break): call
      :func:`elbits.check_device_errors` yourself, e.g. at each logging step.

    - ``inplace_grad`` (categorical-256 only): backward overwrites the logits with
      their gradient instead of allocating one (see :func:`elbits.elbo_terms`).

    - ``input="probs"`` (bernoulli): the decoder's sigmoid output instead of logits;
      ``scale``/``log_scale``/``discretize`` (gaussian, laplace): the decoder's sigma or b
      and the 8-bit range, as in :func:`elbits.elbo_terms`. A tensor ``scale`` is kept on the
      criterion: an ``nn.Parameter`` is learned with ``crit.parameters()``, another tensor is a
      buffer. ``forward(..., scale=, log_scale=)`` replaces them per call (a decoder's log-scale).

    After each call ``crit.last`` holds the detached :class:`ELBOTerms` for logging.
    """

    def __init__(
        self,
        likelihood: str = "bernoulli",
        beta: float = 1.0,
        reduction: str = "mean",
        *,
        check_finite: bool = True,
        controller: Optional[Controller] = None,
        check_every: int = 100,
        inplace_grad: bool = False,
        input: str = "logits",
        scale: Union[float, torch.Tensor, None] = None,
        log_scale: Optional[torch.Tensor] = None,
        discretize: Optional[tuple[float, float]] = None,
    ) -> None:
        super().__init__()
        # Every setting is checked here, so a bad one fails at construction, not at the first batch.
        resolve_likelihood(likelihood, inplace_grad, input)
        likelihood_settings(likelihood, scale, log_scale, discretize)
        self.discretize = check_discretize(discretize)
        if likelihood in CONTINUOUS and (scale is not None or log_scale is not None):
            check_scale_arg(likelihood, scale, log_scale)
        self.inplace_grad = inplace_grad
        self.input = input
        if reduction not in ("mean", "sum"):
            raise InputError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.likelihood = likelihood
        self.beta = _check_beta(beta)
        self.reduction = reduction
        if not isinstance(check_finite, bool):
            raise InputError(f"check_finite must be True or False, got {check_finite!r}")
        self.check_finite = check_finite
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
            raise InputError(f"check_every must be a whole number of calls >= 1, got {check_every!r}")
        self.check_every = check_every
        self._calls = 0
        self.last: Optional[ELBOTerms] = None
        # A tensor scale is a learned parameter (an nn.Parameter, in crit.parameters()) or a
        # buffer that follows crit.to(device); a float stays a float.
        self.scale: Union[float, torch.Tensor, None] = None
        self.log_scale: Optional[torch.Tensor] = None
        for name, value in (("scale", scale), ("log_scale", log_scale)):
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                delattr(self, name)
                self.register_buffer(name, value)
            else:
                setattr(self, name, float(value) if isinstance(value, numbers.Real) else value)
        self.controller = controller
        if controller is not None:
            if beta != 1.0:
                raise InputError("give either beta or controller, not both (the controller sets beta)")
            for attr in ("beta", "loss", "step", "state_dict", "load_state_dict"):
                if not hasattr(controller, attr):
                    raise TypeError(
                        f"controller must have .{attr} (see elbits.calibrate), got {controller!r}"
                    )
            self.controller_state = _ControllerState(controller)
            self.beta = float(controller.beta)

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        *,
        scale: Union[float, torch.Tensor, None] = None,
        log_scale: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``logits``: the decoder output (logits; probabilities with ``input="probs"``; the mean
        for gaussian/laplace). ``scale``/``log_scale`` given here (e.g. the decoder's per-subpixel
        log-scale) replace the constructor's."""
        # The gradient each sample's recon gets from the reduction below (recon's weight
        # is 1 in every controller here); None is elbo_terms' default, the batch mean's 1/B.
        hint = None if self.reduction == "mean" else 1.0
        if scale is None and log_scale is None:
            scale, log_scale = self.scale, self.log_scale
        terms = elbo_terms(
            logits,
            target,
            mu,
            logvar,
            self.likelihood,
            check_finite=self.check_finite,
            recon_grad_hint=hint,
            inplace_grad=self.inplace_grad,
            input=self.input,
            scale=scale,
            log_scale=log_scale,
            discretize=self.discretize,
        )
        self.last = terms.detach()
        # The lazy device check reads a flag off the GPU (a sync): eager only. Under torch.compile
        # call elbits.check_device_errors() yourself, e.g. at each logging step.
        if self.check_finite and logits.is_cuda and not torch.compiler.is_compiling():
            self._check_device(logits.device)
        if self.controller is None:
            # kl.sum(1), not the kl_total property: Dynamo before torch 2.13 (2.4, 2.8) cannot read a
            # NamedTuple's property under fullgraph (docs/compatibility.md)
            per_sample = terms.recon + self.beta * terms.kl.sum(dim=1)
        else:
            per_sample = self._controlled(terms)
        return per_sample.mean() if self.reduction == "mean" else per_sample.sum()

    # Eager on purpose: under torch.compile a beta that changes every step would be a new
    # constant (a recompile per step), and step() reads floats off the device anyway.
    @torch.compiler.disable
    def _controlled(self, terms: ELBOTerms) -> torch.Tensor:
        assert self.controller is not None
        self.beta = float(self.controller.beta)
        per_sample = self.controller.loss(terms.recon, terms.kl_total)
        if self.training and torch.is_grad_enabled():
            self.controller.step(terms.detach())
        return per_sample

    @torch.compiler.disable
    def _check_device(self, device: torch.device) -> None:
        self._calls += 1
        if self._calls % self.check_every == 0:
            check_device_errors(device)

    def extra_repr(self) -> str:
        ctrl = "" if self.controller is None else f", controller={self.controller!r}"
        extra = "" if self.input == "logits" else f", input={self.input!r}"
        if isinstance(self.scale, float):
            extra += f", scale={self.scale}"
        if self.discretize is not None:
            extra += f", discretize={self.discretize}"
        return f"likelihood={self.likelihood!r}, beta={self.beta}, reduction={self.reduction!r}{extra}{ctrl}"
