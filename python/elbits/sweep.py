"""The sweep API in one import: :func:`run_sweep` (the driver, :mod:`elbits.experiments.sweep`) and its
files (:mod:`elbits.report.sweep`)."""

from __future__ import annotations

from .experiments.sweep import SweepPoint, SweepResult, run_sweep
from .report.sweep import CSV_FIELDS, plot_sweep, read_csv, write_csv

__all__ = ["CSV_FIELDS", "SweepPoint", "SweepResult", "plot_sweep", "read_csv", "run_sweep", "write_csv"]
