"""Reports of a training run: report.md (budget, rate, distortion, bound, the seed's table) and PNG plots.

``run_demo()`` is ``elbits demo``: train the reference beta-VAE on dSprites, then write the report.
"""

from __future__ import annotations

from .demo import DEMO_DEFAULTS, demo_config, run_demo, write_report
from .summary import build_summary, terminal_table

__all__ = ["DEMO_DEFAULTS", "build_summary", "demo_config", "run_demo", "terminal_table", "write_report"]
