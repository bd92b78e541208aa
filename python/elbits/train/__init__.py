"""Training: ``elbits.train.train(TrainConfig(...))`` fits a VAE with the fused ELBOLoss, a beta controller
from :mod:`elbits.calibrate` and the :class:`~elbits.meter.RateDistortionMeter`; ``elbits train`` on the
command line, ``torchrun ... -m elbits train`` for DDP. See README.md "The main job".
"""

from __future__ import annotations

from .checkpoint import load_checkpoint, save_checkpoint
from .config import CONTROLLERS, TrainConfig
from .data import Budget, IndexStream, build_dataset, data_budget, fetch
from .logging import read_jsonl, tensorboard_available
from .loop import TrainResult, build_controller, evaluate, train

__all__ = [
    "CONTROLLERS", "Budget", "IndexStream", "TrainConfig", "TrainResult", "build_controller", "build_dataset",
    "data_budget", "evaluate", "fetch", "load_checkpoint", "read_jsonl", "save_checkpoint",
    "tensorboard_available", "train",
]
