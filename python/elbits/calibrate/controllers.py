"""Beta controllers: schedules for the weight of the rate, driven by what training measures.

Every controller has:

- ``beta``: the weight of R for the next batch (nats of distortion per nat of rate);
- ``loss(recon, kl_total) -> [B]`` the per-sample objective with the current state
  (``recon + beta * kl_total`` unless the method says otherwise), nats;
- ``step(source) -> beta``: update from a batch (``ELBOTerms``, a meter, or a dict of
  scalars) and return the beta for the *next* batch;
- ``state_dict()`` / ``load_state_dict()``: plain floats and ints, so ``torch.save``
  and ``torch.load(weights_only=True)`` round-trip it and resumed runs are bit-identical.

Used by hand::

    loss = ctrl.loss(terms.recon, terms.kl_total).mean(); loss.backward(); ctrl.step(terms.detach())

or through ``ELBOLoss(controller=ctrl)``, which does exactly that. Targets are in bits
(``*_bits``) or nats (``*_nats``); they are stored in nats, the unit of the terms.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Optional

import torch

from ..errors import InputError
from ..units import NATS_PER_BIT
from ._observe import Observation, observe
from .audit import effective_beta


def _real(name: str, value: Any) -> float:
    # Numbers only: a string or bool in a setting (or a loaded state) is a mistake, not a value to coerce.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    return float(value)


def _finite(name: str, value: Any) -> float:
    value = _real(name, value)
    if not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value}")
    return value


def _positive(name: str, value: Any) -> float:
    value = _real(name, value)
    if not (value > 0 and math.isfinite(value)):
        raise InputError(f"{name} must be a positive finite number, got {value}")
    return value


def _nonnegative(name: str, value: Any) -> float:
    value = _real(name, value)
    if not (value >= 0 and math.isfinite(value)):
        raise InputError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _fraction(name: str, value: Any) -> float:
    value = _real(name, value)
    if not 0.0 <= value < 1.0:
        raise InputError(f"{name} must be in [0, 1), got {value}")
    return value


def _count(name: str, value: Any, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise InputError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def _steps(name: str, value: Any) -> int:
    return _count(name, value, least=1)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return value


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    def optional(name: str, value: Any) -> Any:
        return None if value is None else check(name, value)

    return optional


def _one_target(name: str, **given: Optional[float]) -> tuple[str, float]:
    # A Quantity converts itself to the unit the parameter name asks for.
    set_ = {k: getattr(v, "bits" if "bits" in k else "nats", v) for k, v in given.items() if v is not None}
    if len(set_) != 1:
        raise InputError(f"{name}: give exactly one of {', '.join(given)}; got {sorted(set_) or 'none'}")
    ((unit, value),) = set_.items()
    return unit, _positive(f"{name}: {unit}", value)


def _ordered(where: str, low: str, high: str, values: dict[str, Any]) -> None:
    if values[low] > values[high]:
        raise InputError(f"{where}{low} ({values[low]}) must not exceed {high} ({values[high]})")


def _any(name: str, value: Any) -> Any:
    return value


class Controller:
    """Base class: constant beta. Subclasses override ``_update``, list their state in ``_state``, say in
    ``_checks`` how each entry is checked (as the constructor checks the setting) and in ``_consistent``
    the rules between entries; an entry without a check is loaded as it is."""

    _state: ClassVar[tuple[str, ...]] = ("beta_", "steps")
    _checks: ClassVar[dict[str, Callable[[str, Any], Any]]] = {"beta_": _nonnegative, "steps": _count}

    def __init__(self, beta: float = 1.0) -> None:
        self.beta_ = _nonnegative("beta", beta)
        self.steps = 0

    @property
    def beta(self) -> float:
        """Weight of the rate for the next batch, nats per nat."""
        return self.beta_

    def loss(self, recon: torch.Tensor, kl_total: torch.Tensor) -> torch.Tensor:
        """Per-sample objective ``[B]``, nats: ``recon + beta * kl_total``."""
        return recon + self.beta * kl_total

    def step(self, source: Any) -> float:
        """Update from one batch (or a meter's running figures); return the next beta."""
        self._update(observe(source))
        self.steps += 1
        return self.beta

    def _update(self, obs: Observation) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """State and settings as plain numbers (like an optimizer's, settings included)."""
        return {"type": type(self).__name__, **{k: getattr(self, k) for k in self._state}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; settings come from the checkpoint.

        Every entry is checked first, as the constructor checks its setting; an :class:`InputError`
        names the first bad one and the controller is left unchanged.
        """
        name = type(self).__name__
        if not isinstance(state, Mapping):
            raise InputError(
                f"{name}.load_state_dict takes the dict state_dict() gives, got {type(state).__name__}"
            )
        if state.get("type") != name:
            raise InputError(f"state is for {state.get('type')!r}, not {name}")
        missing = [k for k in self._state if k not in state]
        if missing:
            raise InputError(f"{name} state lacks {missing}")
        unknown = sorted(str(k) for k in set(state) - {"type", *self._state})
        if unknown:
            raise InputError(f"{name} state has entries {unknown} that {name} does not have")
        values = {k: self._checks.get(k, _any)(f"{name} state {k}", state[k]) for k in self._state}
        self._consistent(values, f"{name} state: ")
        for k, v in values.items():
            setattr(self, k, v)

    def _consistent(self, values: dict[str, Any], where: str) -> None:
        """Rules between state entries (``where`` starts the message); the base class has none."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta={self.beta:.4g}, steps={self.steps})"


class FixedBeta(Controller):
    """A constant beta (nats per nat); :meth:`from_weights` reads it off a weighting."""

    @classmethod
    def from_weights(cls, w_recon: float, w_kl: float, **reductions: Any) -> FixedBeta:
        """The beta ``w_recon * L_recon + w_kl * L_kl`` really applies (see :func:`effective_beta`).

        The loss this controller gives is ``D + beta R`` on per-sample sums; it differs
        from the weighted loss by a constant factor (``w_recon / dims`` for a mean
        reconstruction), so an SGD learning rate may need rescaling; Adam's does not.
        """
        return cls(effective_beta(w_recon, w_kl, **reductions))


class CapacityAnnealing(Controller):
    """Burgess et al. 2018: loss = D + gamma * |R - C(t)|, C rising linearly to ``C_max`` over ``steps``.

    ``c_max_bits`` or ``c_max_nats`` is per sample; ``gamma`` is dimensionless (nats per nat).
    Their dSprites setting is :meth:`burgess_dsprites` (25 nats over 100,000 steps, gamma 1000).

    The absolute value acts on the batch-mean rate, as in their code. :meth:`loss` writes it
    per sample as ``recon + gamma * s * (kl_total - C)`` with ``s = sign(mean(kl_total) - C)``
    (detached), whose mean is ``mean D + gamma |mean R - C|`` with the same gradient.
    ``beta`` is the resulting weight on R, ``+gamma`` or ``-gamma`` (last batch's side of C).
    """

    _state = ("beta_", "steps", "c_max_nats", "anneal_steps", "gamma", "last_rate_nats")
    _checks = {
        "beta_": _finite,
        "steps": _count,
        "c_max_nats": _positive,
        "anneal_steps": _steps,
        "gamma": _positive,
        "last_rate_nats": _optional(_finite),
    }

    def __init__(
        self,
        c_max_bits: Optional[float] = None,
        *,
        c_max_nats: Optional[float] = None,
        steps: int = 100_000,
        gamma: float = 1000.0,
    ) -> None:
        unit, value = _one_target("CapacityAnnealing", c_max_bits=c_max_bits, c_max_nats=c_max_nats)
        self.gamma = _positive("gamma", gamma)
        super().__init__(self.gamma)
        self.c_max_nats = value * NATS_PER_BIT if unit == "c_max_bits" else value
        self.anneal_steps = _steps("steps", steps)
        self.last_rate_nats: Optional[float] = None

    def _consistent(self, values: dict[str, Any], where: str) -> None:
        if abs(values["beta_"]) != values["gamma"]:
            raise InputError(
                f"{where}beta_ must be +gamma or -gamma ({values['gamma']}), got {values['beta_']}"
            )

    @classmethod
    def burgess_dsprites(cls) -> CapacityAnnealing:
        """Burgess et al.'s dSprites schedule: C to 25 nats (36.07 bits) over 100,000 steps, gamma 1000."""
        return cls(c_max_nats=25.0, steps=100_000, gamma=1000.0)

    @property
    def capacity_nats(self) -> float:
        """C(t) for the next batch, nats per sample."""
        return self.c_max_nats * min(1.0, self.steps / self.anneal_steps)

    @property
    def capacity_bits(self) -> float:
        return self.capacity_nats / NATS_PER_BIT

    def loss(self, recon: torch.Tensor, kl_total: torch.Tensor) -> torch.Tensor:
        c = self.capacity_nats
        # sign of the batch deviation, kept on device: no host sync in the forward.
        s = torch.sign(kl_total.detach().mean() - c)
        return recon + self.gamma * s * (kl_total - c)

    def _update(self, obs: Observation) -> None:
        self.last_rate_nats = obs.rate_nats
        # Judged against the capacity of the step just taken; the schedule then advances.
        self.beta_ = math.copysign(self.gamma, obs.rate_nats - self.capacity_nats)


class GECO(Controller):
    """Rezende & Viola 2018: minimise R subject to D <= target, with a Lagrange multiplier.

    The Lagrangian R + lambda (D - target) has the minimisers of D + beta R with
    beta = 1 / lambda; :meth:`loss` uses the latter so the loss keeps the ELBO's scale.
    The constraint is measured relative to the target, c = D / target - 1, so ``lr`` is
    unit-free; its EMA (``ema``, their alpha = 0.99) drives
    ``lambda <- lambda * exp(lr * c_ema)``. Both lambda and the EMA are state: dropping
    the EMA on resume restarts it from one noisy batch and kicks lambda.

    Target: ``target_bits`` or ``target_nats`` per sample, or ``target_bits_per_dim``
    (the source must know its dims: ELBOTerms or a meter with ``distortion_bits_per_dim``).
    """

    _state = (
        "beta_", "steps", "target", "per_dim", "lr", "ema", "lambda_", "c_ema", "lambda_min", "lambda_max",
    )  # fmt: skip
    _checks = {
        "beta_": _positive,
        "steps": _count,
        "target": _positive,
        "per_dim": _flag,
        "lr": _positive,
        "ema": _fraction,
        "lambda_": _positive,
        "c_ema": _optional(_finite),
        "lambda_min": _positive,
        "lambda_max": _positive,
    }

    def __init__(
        self,
        target_bits: Optional[float] = None,
        *,
        target_nats: Optional[float] = None,
        target_bits_per_dim: Optional[float] = None,
        lr: float = 1e-2,
        ema: float = 0.99,
        lambda_init: float = 1.0,
        lambda_min: float = 1e-6,
        lambda_max: float = 1e6,
    ) -> None:
        unit, value = _one_target(
            "GECO", target_bits=target_bits, target_nats=target_nats, target_bits_per_dim=target_bits_per_dim
        )
        self.per_dim = unit == "target_bits_per_dim"
        # Stored in nats per sample, or bits/dim when per_dim (dims come from each batch).
        self.target = value * NATS_PER_BIT if unit == "target_bits" else value
        self.lr = _positive("lr", lr)
        self.ema = _fraction("ema", ema)
        self.lambda_min, self.lambda_max = (
            _positive("lambda_min", lambda_min),
            _positive("lambda_max", lambda_max),
        )
        _ordered(
            "", "lambda_min", "lambda_max", {"lambda_min": self.lambda_min, "lambda_max": self.lambda_max}
        )
        self.lambda_ = min(max(_positive("lambda_init", lambda_init), self.lambda_min), self.lambda_max)
        self.c_ema: Optional[float] = None
        super().__init__(1.0 / self.lambda_)

    def _consistent(self, values: dict[str, Any], where: str) -> None:
        _ordered(where, "lambda_min", "lambda_", values)
        _ordered(where, "lambda_", "lambda_max", values)
        if not math.isclose(values["beta_"], 1.0 / values["lambda_"], rel_tol=1e-12):
            raise InputError(
                f"{where}beta_ must be 1 / lambda_ = {1.0 / values['lambda_']}, got {values['beta_']}"
            )

    def constraint(self, obs: Observation) -> float:
        """Relative violation D / target - 1 of one observation (> 0: distortion too high)."""
        d = obs.distortion_bits_per_dim if self.per_dim else obs.distortion_nats
        return d / self.target - 1.0

    def _update(self, obs: Observation) -> None:
        c = self.constraint(obs)
        self.c_ema = c if self.c_ema is None else self.ema * self.c_ema + (1.0 - self.ema) * c
        lam = self.lambda_ * math.exp(min(self.lr * self.c_ema, 50.0))
        self.lambda_ = min(max(lam, self.lambda_min), self.lambda_max)
        self.beta_ = 1.0 / self.lambda_


class TargetRate(Controller):
    """Dual ascent on log beta until the rate R reaches ``target_bits`` (or ``target_nats``) per sample.

    ``log beta <- log beta + lr * (R_ema / target - 1)``: a rate above target raises beta,
    which lowers the rate. A natural target is the data's entropy H(X) (19.49 bits for
    dSprites' 737,280 images): the least rate that can describe every image exactly.
    """

    _state = ("beta_", "steps", "target_nats", "lr", "ema", "rate_ema", "beta_min", "beta_max")
    _checks = {
        "beta_": _positive,
        "steps": _count,
        "target_nats": _positive,
        "lr": _positive,
        "ema": _fraction,
        "rate_ema": _optional(_finite),
        "beta_min": _positive,
        "beta_max": _positive,
    }

    def __init__(
        self,
        target_bits: Optional[float] = None,
        *,
        target_nats: Optional[float] = None,
        lr: float = 1e-2,
        ema: float = 0.9,
        beta_init: float = 1.0,
        beta_min: float = 1e-6,
        beta_max: float = 1e6,
    ) -> None:
        unit, value = _one_target("TargetRate", target_bits=target_bits, target_nats=target_nats)
        self.target_nats = value * NATS_PER_BIT if unit == "target_bits" else value
        self.lr = _positive("lr", lr)
        self.ema = _fraction("ema", ema)
        self.beta_min, self.beta_max = _positive("beta_min", beta_min), _positive("beta_max", beta_max)
        _ordered("", "beta_min", "beta_max", {"beta_min": self.beta_min, "beta_max": self.beta_max})
        self.rate_ema: Optional[float] = None
        super().__init__(min(max(_positive("beta_init", beta_init), self.beta_min), self.beta_max))

    @property
    def target_bits(self) -> float:
        return self.target_nats / NATS_PER_BIT

    def _consistent(self, values: dict[str, Any], where: str) -> None:
        _ordered(where, "beta_min", "beta_max", values)
        _ordered(where, "beta_min", "beta_", values)
        _ordered(where, "beta_", "beta_max", values)

    def _update(self, obs: Observation) -> None:
        r = obs.rate_nats
        self.rate_ema = r if self.rate_ema is None else self.ema * self.rate_ema + (1.0 - self.ema) * r
        step = max(min(self.lr * (self.rate_ema / self.target_nats - 1.0), 50.0), -50.0)
        self.beta_ = min(max(self.beta_ * math.exp(step), self.beta_min), self.beta_max)
