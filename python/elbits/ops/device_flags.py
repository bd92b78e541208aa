"""Input problems found by CUDA kernels, reported without a host sync on the hot path.

CUDA kernels OR bits into one int32 word per device (never read by the op
itself, so a training step does not wait for the GPU). :func:`check_device_errors`
reads and clears it, and raises the same ValueError the CPU path raises at once.
ELBOLoss calls it every ``check_every`` steps on CUDA.
"""

from __future__ import annotations

import torch

from .validate import raise_flags

# Bits of csrc/cuda/kernels.h's Flag enum, named as the CPU flags are.
BITS = {
    "nonfinite_logits": 1,
    "target_out_of_range": 2,
    "nonfinite_mu": 4,
    "nonfinite_logvar": 8,
    "nonfinite_params": 16,
    "target_level_out_of_range": 32,
}

_flags: dict[torch.device, torch.Tensor] = {}


def _key(device: torch.device | str) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def flags_for(device: torch.device) -> torch.Tensor:
    """The device's flag word (allocated once, zeroed)."""
    device = _key(device)
    word = _flags.get(device)
    if word is None:
        word = torch.zeros(1, dtype=torch.int32, device=device)
        _flags[device] = word
    return word


def check_device_errors(device: torch.device | str | None = None) -> None:
    """Raise ``ValueError`` naming the tensors a CUDA kernel rejected since the last check.

    Synchronises with the device (reads one int32). ``device=None`` checks every device used.
    """
    devices = list(_flags) if device is None else [_key(device)]
    for dev in devices:
        word = _flags.get(dev)
        if word is None:
            continue
        value = int(word.item())
        if value:
            word.zero_()
            raise_flags({name: bool(value & bit) for name, bit in BITS.items()})
