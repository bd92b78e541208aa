"""torch.distributed plumbing for the training loop: torchrun's environment, DDP, a globally stepped
controller.

Launch with ``torchrun --nproc-per-node N -m elbits train ...``: torchrun sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, and :func:`setup` initialises the default process group
(``nccl`` on CUDA, ``gloo`` on CPU) when ``WORLD_SIZE > 1``. A group the caller initialised already (e.g.
with ``torch.multiprocessing.spawn``) is used as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    owns_group: bool  # True when setup() created the group (cleanup destroys it)

    @property
    def main(self) -> bool:
        return self.rank == 0


def _pick_device(device: str, local_rank: int) -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


def setup(device: str = "auto") -> Dist:
    """Rank, world size and device; initialises the process group under torchrun (WORLD_SIZE > 1)."""
    owns = False
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
    else:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if world > 1:
            if not dist.is_available():
                raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is unavailable in this torch build")
            dev = _pick_device(device, local)
            backend = "nccl" if dev.type == "cuda" else "gloo"
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            dist.init_process_group(backend, rank=rank, world_size=world)  # env:// from torchrun
            owns = True
    dev = _pick_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return Dist(rank, world, local, dev, owns)


def cleanup(d: Dist) -> None:
    if d.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def _reduce_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum plain floats over all ranks (float64)."""
    t = torch.tensor(values, dtype=torch.float64, device=_reduce_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


def gather_objects(obj: Any, world: int) -> list[Any]:
    """Every rank's ``obj`` (a list of ``world`` items on every rank); ``[obj]`` without a group."""
    if world == 1 or not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


class GlobalController:
    """A controller that steps on the batch's *global* rate and distortion (all ranks), so that every rank
    keeps the same beta and state. Delegates everything else to the wrapped controller; its state dict is
    the wrapped one's, so checkpoints read the same with or without DDP."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def beta(self) -> float:
        return float(self.inner.beta)

    def loss(self, recon: torch.Tensor, kl_total: torch.Tensor) -> torch.Tensor:
        return self.inner.loss(recon, kl_total)

    def step(self, source: Any) -> float:
        recon, kl = source.recon.detach().double(), source.kl.detach().double().sum(dim=1)
        n, rs, ks = all_reduce_sum([float(recon.numel()), float(recon.sum()), float(kl.sum())])
        return float(self.inner.step({"rate_nats": ks / n, "distortion_nats": rs / n, "dims": source.dims}))

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def __getattr__(self, name: str) -> Any:  # capacity_bits, lambda_, ... for logging
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"GlobalController({self.inner!r})"
