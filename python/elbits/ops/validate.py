"""Early, named input checks shared by every likelihood's op.

Shape, dtype and device problems are found here, before any kernel runs; value
problems (NaN/Inf, targets out of range) are found by the kernels in the same
pass that computes the loss, and reported by :func:`raise_flags`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .._core import core
from .._dtypes import FLOATS
from ..errors import InputError


def _dtype_names(dtypes: Iterable[torch.dtype]) -> str:
    return ", ".join(str(d).replace("torch.", "") for d in dtypes)


def check_tensor(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def check_dtype(name: str, t: torch.Tensor, allowed: Iterable[torch.dtype]) -> None:
    allowed = tuple(allowed)
    if t.dtype not in allowed:
        raise TypeError(
            f"{name} must have dtype in ({_dtype_names(allowed)}), got {str(t.dtype).replace('torch.', '')}"
        )


def check_same_device(named: dict[str, torch.Tensor]) -> None:
    """All inputs on one device, and one elbits has kernels for (the CPU; CUDA in a CUDA build)."""
    devices = {name: t.device for name, t in named.items()}
    first_name, first = next(iter(devices.items()))
    for name, dev in devices.items():
        if dev != first:
            raise ValueError(
                f"{name} is on {dev} but {first_name} is on {first}: all inputs must be on one device"
            )
    if first.type == "cpu" or (first.type == "cuda" and core.has_cuda):
        return
    supported = "cpu, cuda" if core.has_cuda else "cpu"
    build = (
        ""
        if core.has_cuda
        else (
            "; this build has no CUDA kernels (elbits._C.has_cuda is False): for GPUs build with CUDA (see "
            "README)"
        )
    )
    raise NotImplementedError(
        f"inputs are on {first}, but elbits has kernels for device types {supported} only: "
        f"move the tensors to one of those{build}"
    )


def check_inputs(
    name: str,
    params: object,
    target: object,
    mu: object,
    logvar: object,
    target_dtypes: Iterable[torch.dtype] | None = None,
    same_shape: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """The checks every likelihood starts with: ``params`` ``[B, ...]`` floating, ``target``
    with batch B (of params' shape with ``same_shape``; of ``target_dtypes`` if given), latents
    ``[B, Z]``, one supported device. Returns (params, target, mu, logvar, B, elements per sample)."""
    params = check_tensor(name, params)
    target = check_tensor("target", target)
    check_dtype(name, params, FLOATS)
    if target_dtypes is not None:
        check_dtype("target", target, target_dtypes)
    batch, per_sample = check_batch(name, params)
    if same_shape and target.shape != params.shape:
        raise ValueError(
            f"target must have the shape of {name} {tuple(params.shape)}, got {tuple(target.shape)}"
        )
    mu, logvar = check_latents(mu, logvar, batch)
    check_same_device({name: params, "target": target, "mu": mu, "logvar": logvar})
    if not same_shape and (target.dim() < 1 or target.shape[0] != batch):
        raise ValueError(
            f"target batch size {tuple(target.shape)[:1]} does not match the batch size {batch} of {name}"
        )
    return params, target, mu, logvar, batch, per_sample


def check_latents(mu: object, logvar: object, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """mu, logvar: ``[B, Z]`` floating tensors of one shape whose batch matches ``batch``."""
    mu = check_tensor("mu", mu)
    logvar = check_tensor("logvar", logvar)
    for name, t in (("mu", mu), ("logvar", logvar)):
        check_dtype(name, t, FLOATS)
        if t.dim() != 2:
            raise ValueError(f"{name} must be [B, Z] (2-D), got shape {tuple(t.shape)}")
    if mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must have the same shape [B, Z], got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    if mu.shape[0] != batch:
        raise ValueError(
            f"mu/logvar batch size {mu.shape[0]} does not match the batch size {batch} of logits"
        )
    if mu.shape[1] == 0:
        raise ValueError("mu/logvar must have at least one latent dimension (Z >= 1)")
    return mu, logvar


def check_batch(name: str, t: torch.Tensor) -> tuple[int, int]:
    """``[B, ...]`` with B >= 1 and at least one element per sample; returns (B, elements per sample)."""
    if t.dim() < 2:
        raise ValueError(f"{name} must be [B, ...] with at least 2 dimensions, got shape {tuple(t.shape)}")
    batch = t.shape[0]
    if batch == 0:
        raise ValueError(f"{name} has an empty batch (B = 0): nothing to compute a per-sample loss for")
    per_sample = t[0].numel()
    if per_sample == 0:
        raise ValueError(f"{name} has no elements per sample (shape {tuple(t.shape)})")
    return batch, per_sample


_FLAG_MESSAGES = {
    "nonfinite_logits": "logits contain NaN or Inf",
    "nonfinite_params": "the likelihood parameters contain NaN or Inf",
    "target_out_of_range": "target has values outside [0, 1] (or NaN)",
    "target_level_out_of_range": "target has levels outside 0..255 (or NaN)",
    "loss_overflow": "the reconstruction loss overflowed float32 (logits near float32's largest values)",
    "nonfinite_mu": "mu contains NaN or Inf",
    "nonfinite_logvar": "logvar contains NaN or Inf",
}


def raise_flags(flags: dict[str, bool]) -> None:
    """Raise one ValueError naming every tensor whose values the kernel rejected."""
    problems = [_FLAG_MESSAGES[k] for k, v in flags.items() if v]
    if problems:
        raise ValueError(
            "; ".join(problems)
            + " (found by elbits in the loss pass; pass check_finite=False to skip this check and get NaN "
            "through)"
        )


def rows_contiguous(t: torch.Tensor) -> torch.Tensor:
    """``[B, n]`` view whose rows are contiguous (any batch stride); copies only when needed."""
    flat = t.flatten(1)  # a view whenever the per-sample block allows one
    if flat.stride(1) == 1 or flat.shape[1] == 1:
        return flat
    return flat.contiguous()


def sample_contiguous(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``t`` viewed as ``shape`` (batch first) with each sample contiguous; copies only when needed."""
    flat = t.reshape(shape) if t[0].is_contiguous() else t.contiguous().reshape(shape)
    if not flat[0].is_contiguous():
        flat = flat.contiguous()
    return flat


# 8-bit targets as the level kernels read them (categorical-256, logistic mixture, discretized Gaussian).
LEVEL_TARGETS = (torch.uint8, torch.int64)
# Targets out of range raise even with check_finite=False: they are not a NaN to pass on.
TARGET_FLAGS = ("target_level_out_of_range", "target_out_of_range")


def levels(target: torch.Tensor, what: str) -> torch.Tensor:
    """Integer levels 0..255 from uint8/int64 levels, or from floats in [-1, 1] (x = level/127.5 - 1)."""
    if target.dtype in LEVEL_TARGETS:
        return target
    if target.dtype in FLOATS:
        if target.requires_grad and torch.is_grad_enabled():
            # Rounding to a level is piecewise constant: no gradient to give, and a silent zero
            # would look like one.
            raise InputError(
                f"target requires grad, but {what} reads a float target as 8-bit levels (rounded, so it "
                "has no gradient): pass target.detach(), or use a likelihood of continuous targets"
            )
        t = target.detach().double()
        if t.is_cuda:
            # No host sync on CUDA: a value outside [-1, 1] (or NaN) becomes level -1, which the
            # kernel flags lazily as a level out of range (elbits.check_device_errors).
            inside = (t >= -1.0) & (t <= 1.0)
            return torch.where(inside, (t + 1.0) * 127.5, -1.0).round().to(torch.int64)
        if not bool(((t >= -1.0) & (t <= 1.0)).all()):
            raise ValueError(
                f"target has values outside [-1, 1] (or NaN); {what} reads float targets as level/127.5 - 1"
            )
        return ((t + 1.0) * 127.5).round().to(torch.int64)
    check_dtype("target", target, LEVEL_TARGETS + FLOATS)
    raise AssertionError


def image_levels(
    name: str, params: torch.Tensor, target: torch.Tensor, what: str
) -> tuple[torch.Tensor, int]:
    """(levels, channels) of an image target ``[B, C, *spatial]`` for parameters ``[B, channels,
    *spatial]`` of the same spatial shape (see :func:`levels`)."""
    if target.dim() < 3:
        raise ValueError(f"target must be [B, C, *spatial] (C = 1 or 3), got shape {tuple(target.shape)}")
    if params.dim() != target.dim() or params.shape[2:] != target.shape[2:]:
        raise ValueError(
            f"{name} must be [B, channels, *spatial] with the spatial shape of target {tuple(target.shape)}, "
            f"got {tuple(params.shape)}"
        )
    return levels(target, what), target.shape[1]
