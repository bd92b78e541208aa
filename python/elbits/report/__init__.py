"""Rendering: what a run or an evaluation measured, as files and text; nothing here trains or evaluates.

- a training run's report (:func:`write_report`: report.md with the budget, rate, distortion, bound and
  the seed's table, summary.json and the PNG plots), from :func:`build_summary`;
- ``elbits evaluate``'s text, plot and CSV row (:mod:`elbits.report.evaluation`);
- a sweep's CSV and plots (:mod:`elbits.report.sweep`).

The drivers that produce the results are in :mod:`elbits.experiments` (``elbits demo``:
:func:`elbits.experiments.demo.run_demo`).
"""

from __future__ import annotations

from .files import write_report
from .summary import build_summary, terminal_table

__all__ = ["build_summary", "terminal_table", "write_report"]
