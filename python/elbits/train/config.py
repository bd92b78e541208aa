"""TrainConfig: every setting of a training run, as plain values (saved in each checkpoint)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

CONTROLLERS = ("fixed", "capacity", "geco", "target-rate")


@dataclass
class TrainConfig:
    """Settings of :func:`elbits.train.train`. Units are in the names: ``*_bits`` per sample.

    Data
      - ``npz``: path of the real dSprites npz; ``None`` renders the procedural grid.
      - ``train_size``: images in the training set, drawn without replacement from the whole
        grid with ``data_seed`` (``None``: all 737,280; rendering them all takes ~30 s).

    Optimisation
      - ``steps`` (optimiser steps), ``batch_size`` (per process), ``lr``, ``weight_decay`` (AdamW),
        ``seed`` (model init, data order, z noise), ``z_dim``.

    Controller (``controller``: one of ``fixed``, ``capacity``, ``geco``, ``target-rate``)
      - ``fixed``: ``beta`` (nats of distortion per nat of rate).
      - ``capacity``: C rises to ``capacity_bits`` over ``capacity_steps`` (default: ``steps``), ``gamma``.
      - ``geco``: distortion target ``target_bits``; ``controller_lr``.
      - ``target-rate``: rate target ``target_bits`` (default: the budget H(X) of the training set);
        ``controller_lr``; starts at ``beta``.

    Output
      - ``out_dir``: ``metrics.jsonl``, ``checkpoint.pt`` and (when tensorboard is installed) ``tb/``.
      - ``log_every``: steps between metric records (each the mean over the steps since the last one).
      - ``checkpoint_every``: steps between checkpoints (0: only at the end).
      - ``resume``: continue where a run stopped, from this checkpoint file or folder (``"auto"``:
        ``out_dir/checkpoint.pt``).
      - ``eval_at_end``: one pass over the training set after the last step (z sampled, no update), written
        to ``final.json``: the figures to quote; over ``eval_limit`` evenly spaced images of a larger set.
      - ``progress``: a tqdm bar with the running rate and distortion in bits; ``tensorboard``: scalars under
        ``out_dir/tb`` when tensorboard is installed; ``device``: ``auto`` (CUDA when present) or a torch device.
    """

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    z_dim: int = 10
    npz: Optional[str] = None
    train_size: Optional[int] = 32768
    data_seed: int = 0
    controller: str = "fixed"
    beta: float = 1.0
    target_bits: Optional[float] = None
    capacity_bits: float = 25.0
    capacity_steps: Optional[int] = None
    gamma: float = 1000.0
    controller_lr: float = 1e-2
    out_dir: str = "elbits-run"
    log_every: int = 50
    checkpoint_every: int = 0
    resume: Optional[str] = None
    eval_at_end: bool = True
    eval_limit: Optional[int] = 65536
    progress: bool = True
    tensorboard: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.controller not in CONTROLLERS:
            raise ValueError(f"controller must be one of {list(CONTROLLERS)}, got {self.controller!r}")
        for name in ("steps", "batch_size", "log_every", "z_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.train_size is not None and self.train_size < 1:
            raise ValueError(f"train_size must be positive or None (all images), got {self.train_size}")
        if self.controller == "geco" and self.target_bits is None:
            raise ValueError("controller 'geco' needs target_bits (the distortion to reach, bits per sample)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
