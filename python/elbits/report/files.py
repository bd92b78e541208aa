"""The files of a run's report: report.md, summary.json and the four PNGs, from the summary and a batch of
reconstructions."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional, Union

import torch

from . import markdown, plots


def write_report(
    s: dict[str, Any],
    out_dir: Union[str, Path],
    inputs: torch.Tensor,
    recon: torch.Tensor,
    t0: Optional[float] = None,
) -> dict[str, Any]:
    """report.md, summary.json and the four PNGs under ``out_dir`` from the summary ``s``
    (:func:`~elbits.report.summary.build_summary`) and images ``inputs`` over their reconstructions
    ``recon`` (``[N, C, H, W]`` in [0, 1]); returns ``s``. ``t0``: a ``time.perf_counter()`` start; when
    given, ``s["wall_s"]`` becomes the time from it to after the plots."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots.curves(s, out / "curves.png")
    plots.kl_bars(s, out / "kl_per_dim.png")
    plots.reconstructions(inputs, recon, out / "reconstructions.png")
    plots.rd_plane(s, out / "rd_plane.png")
    if t0 is not None:
        s["wall_s"] = time.perf_counter() - t0
    markdown.write_report(out / "report.md", s)
    (out / "summary.json").write_text(json.dumps(s, indent=1, default=str) + "\n")
    return s


__all__ = ["write_report"]
