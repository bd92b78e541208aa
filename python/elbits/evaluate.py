"""The evaluation API in one import: ``elbits.evaluate.evaluate_checkpoint`` and its parts.

The code lives in its layers: checkpoints in :mod:`elbits.models.checkpoints`, image files in
:mod:`elbits.data.image_files`, the rate-distortion pass in :mod:`elbits.train.rd_pass`, the driver in
:mod:`elbits.experiments.evaluate` and the text, plot and CSV in :mod:`elbits.report.evaluation`.
"""

from __future__ import annotations

from .data.image_files import load_image_file as load_images
from .data.image_files import procedural_set
from .experiments.evaluate import Evaluation, evaluate_checkpoint, evaluate_model, pick_device
from .models.checkpoints import load_model
from .report.evaluation import CSV_KEYS, append_csv, format_text, plot_evaluation

__all__ = [
    "CSV_KEYS",
    "Evaluation",
    "append_csv",
    "evaluate_checkpoint",
    "evaluate_model",
    "format_text",
    "load_images",
    "load_model",
    "pick_device",
    "plot_evaluation",
    "procedural_set",
]
