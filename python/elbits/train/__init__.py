"""Training: ``elbits.train.train(TrainConfig(...))`` fits a VAE with the fused ELBOLoss, a beta controller
from :mod:`elbits.calibrate` and the :class:`~elbits.meter.RateDistortionMeter`; ``elbits train`` on the
command line, ``torchrun ... -m elbits train`` for DDP. See docs/training.md.
"""

from __future__ import annotations

from .checkpoint import load_checkpoint, save_checkpoint
from .config import CONTROLLERS, TrainConfig
from .data import Budget, IndexStream, build_dataset, check_images, data_budget, fetch
from .decoders import DECODER_OUTPUTS, Head, resolve_head, training_likelihoods
from .logging import read_jsonl, tensorboard_available
from .loop import TrainResult, build_controller, train
from .rd_pass import RDPass, rd_pass, sampled_z
from .runs import TrainingInterrupted

__all__ = [
    "CONTROLLERS",
    "DECODER_OUTPUTS",
    "Budget",
    "Head",
    "IndexStream",
    "RDPass",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "build_controller",
    "build_dataset",
    "check_images",
    "data_budget",
    "fetch",
    "load_checkpoint",
    "rd_pass",
    "read_jsonl",
    "resolve_head",
    "sampled_z",
    "save_checkpoint",
    "tensorboard_available",
    "train",
    "training_likelihoods",
]
