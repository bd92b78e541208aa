"""ELBOLoss: a drop-in torch.nn.Module for the negative ELBO in nats per sample."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import nn

from .api import elbo_terms, resolve_likelihood
from .ops.device_flags import check_device_errors
from .terms import ELBOTerms

if TYPE_CHECKING:
    from .calibrate.controllers import Controller


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
    ) -> None:
        super().__init__()
        resolve_likelihood(likelihood, inplace_grad)  # fail at construction, not at the first batch
        self.inplace_grad = inplace_grad
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        beta = float(beta)
        if not beta >= 0.0:
            raise ValueError(f"beta must be a finite number >= 0 (nats of reconstruction per nat of KL), got {beta}")
        self.likelihood = likelihood
        self.beta = beta
        self.reduction = reduction
        self.check_finite = check_finite
        if check_every < 1:
            raise ValueError(f"check_every must be a number of calls >= 1, got {check_every}")
        self.check_every = check_every
        self._calls = 0
        self.last: Optional[ELBOTerms] = None
        self.controller = controller
        if controller is not None:
            if beta != 1.0:
                raise ValueError("give either beta or controller, not both (the controller sets beta)")
            for attr in ("beta", "loss", "step", "state_dict", "load_state_dict"):
                if not hasattr(controller, attr):
                    raise TypeError(f"controller must have .{attr} (see elbits.calibrate), got {controller!r}")
            self.controller_state = _ControllerState(controller)
            self.beta = float(controller.beta)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        # The gradient each sample's recon gets from the reduction below (recon's weight
        # is 1 in every controller here); None is elbo_terms' default, the batch mean's 1/B.
        hint = None if self.reduction == "mean" else 1.0
        terms = elbo_terms(
            logits, target, mu, logvar, self.likelihood, check_finite=self.check_finite, recon_grad_hint=hint,
            inplace_grad=self.inplace_grad,
        )
        self.last = terms.detach()
        # The lazy device check reads a flag off the GPU (a sync): eager only. Under torch.compile
        # call elbits.check_device_errors() yourself, e.g. at each logging step.
        if self.check_finite and logits.is_cuda and not torch.compiler.is_compiling():
            self._check_device(logits.device)
        if self.controller is None:
            per_sample = terms.recon + self.beta * terms.kl_total
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
        return f"likelihood={self.likelihood!r}, beta={self.beta}, reduction={self.reduction!r}{ctrl}"
