"""The files of a rate-distortion sweep: ``sweep.csv`` (one row per run, bits per image) and the plots
``sweep_rd.png`` (the R-D plane with the bounds, the empirical frontier and its slopes) and
``sweep_split.png`` (R split into I(X;Z) and prior mismatch per run). The runs themselves:
:mod:`elbits.experiments.sweep`."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from .. import calibrate

if TYPE_CHECKING:  # the points and the budget are the driver's; the report only reads them
    from ..experiments.sweep import SweepPoint
    from ..train.data import Budget

CSV_FIELDS = (
    "label",
    "controller",
    "beta",
    "target_bits",
    "final_beta",
    "steps",
    "train_size",
    "rate_bits",
    "distortion_bits",
    "distortion_mu_bits",
    "nelbo_bits",
    "mi_bits",
    "mi_stderr_bits",
    "marginal_kl_bits",
    "log_n_bits",
    "active_units",
    "h_bits",
    "factor_bits",
    "marginal_sum_bits",
    "bound_slack_bits",
    "eval_images",
    "distortion_samples",
    "train_s",
    "eval_s",
)


def write_csv(points: Sequence[SweepPoint], path: Union[str, Path]) -> Path:
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_FIELDS))
        w.writeheader()
        for p in points:
            w.writerow(
                {
                    k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v))
                    for k, v in p.row().items()
                }
            )
    return path


def read_csv(path: Union[str, Path]) -> list[dict[str, Any]]:
    """Rows of a ``sweep.csv`` with numbers parsed (empty cells: ``None``)."""
    out = []
    with Path(path).open() as f:
        for r in csv.DictReader(f):
            row: dict[str, Any] = {}
            for k, v in r.items():
                try:
                    row[k] = None if v == "" else float(v)
                except ValueError:
                    row[k] = v
            out.append(row)
    return out


def _figure(w: float, h: float) -> Any:
    # matplotlib is the slowest import here (seconds on a small machine): only a plot pays for it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=90)
    FigureCanvasAgg(fig)
    return fig


def factor_bits(budget: Budget) -> float:
    """The budget's factor entropy, bits (sweeps train on dSprites, whose budget always has it)."""
    assert budget.factor_bits is not None
    return budget.factor_bits


def plot_sweep(points: Sequence[SweepPoint], budget: Budget, out_dir: Union[str, Path]) -> list[Path]:
    """``sweep_rd.png`` (the R-D plane with bounds, frontier and slopes) and ``sweep_split.png`` (R, I(X;Z)
    and
    KL(q(z)||p(z)) per run against H(X) and log2 N)."""
    out = Path(out_dir)
    h, fac = budget.bits, factor_bits(budget)
    marg = points[0].marginal_sum_bits
    r = np.array([p.rate_bits for p in points])
    d = np.array([p.distortion_bits for p in points])
    mi = np.array([p.mi_bits for p in points])

    fig = _figure(7.5, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    r_max = max(float(r.max()), fac, h) * 1.12
    rr = np.linspace(0, r_max, 400)
    bound = h - rr
    ok = bound > 0
    d_lo = max(0.5, min(float(d.min()) * 0.5, h * 0.1))
    ax.fill_between(
        rr[ok],
        d_lo,
        np.maximum(bound[ok], d_lo),
        color="C3",
        alpha=0.15,
        label=f"impossible: D + R < H(X) = {h:.2f} bits",
    )
    ax.plot(rr[ok], bound[ok], color="C3", lw=1)
    chord = marg * (1 - np.clip(rr, 0, h) / h)
    ax.plot(
        rr[chord > 0], chord[chord > 0], color="0.4", ls="--", lw=1, label="chord (0, Σ H(X_i)) to (H, 0)"
    )
    ax.scatter([0], [marg], color="k", marker="s", zorder=5, label=f"rate 0: D = Σ H(X_i) = {marg:.0f} bits")
    ax.axvline(fac, color="0.5", ls=":", lw=1, label=f"factor entropy {fac:.2f} bits")
    fr = calibrate.empirical_frontier(
        [(p.rate_bits, p.distortion_bits) for p in points], labels=[p.label for p in points]
    )
    ax.plot(fr.rate_bits, fr.distortion_bits, color="C0", lw=1.5, zorder=3, label="empirical frontier (hull)")
    for i, s in enumerate(fr.slopes):
        xm = 0.5 * (fr.rate_bits[i] + fr.rate_bits[i + 1])
        ym = math.sqrt(fr.distortion_bits[i] * fr.distortion_bits[i + 1])
        ax.annotate(
            f"-dD/dR = {s:.2f}", (xm, ym), fontsize=7, color="C0", xytext=(4, 4), textcoords="offset points"
        )
    ax.scatter(r, d, color="C0", s=30, zorder=4, label="R = KL(q(z|x)||p), measured")
    ax.scatter(
        mi, d, facecolors="none", edgecolors="C2", s=30, zorder=4, label="I(X;Z) (rate minus KL(q(z)||p(z)))"
    )
    for p in points:
        ax.plot([p.mi_bits, p.rate_bits], [p.distortion_bits] * 2, color="C2", lw=0.6, zorder=2)
        ax.annotate(
            p.label, (p.rate_bits, p.distortion_bits), fontsize=7, xytext=(4, -10), textcoords="offset points"
        )
    ax.set_yscale("log")
    ax.set_xlim(0, r_max)
    ax.set_ylim(d_lo, max(marg, float(d.max())) * 1.5)
    ax.set_xlabel("rate, bits per image")
    ax.set_ylabel("distortion D (z ~ q(z|x)), bits per image (log)")
    ax.set_title(
        f"rate-distortion sweep: {points[0].train_size} training images, {points[0].steps} steps each"
    )
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    p1 = out / "sweep_rd.png"
    fig.savefig(p1, format="png")

    fig = _figure(7.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(points))
    mk = np.array([p.marginal_kl_bits for p in points])
    ax.bar(x, mi, color="C2", label="I(X;Z): bits about the image")
    ax.bar(x, mk, bottom=mi, color="C1", alpha=0.8, label="KL(q(z)||p(z)): prior mismatch")
    for i, p in enumerate(points):
        ax.annotate(
            f"R={p.rate_bits:.1f}",
            (i, p.rate_bits),
            ha="center",
            fontsize=7,
            xytext=(0, 3),
            textcoords="offset points",
        )
    ax.axhline(h, color="C3", ls="--", lw=1, label=f"H(X) of the training set = {h:.2f} bits")
    ax.axhline(
        points[0].log_n_bits,
        color="k",
        ls=":",
        lw=1,
        label=f"log2 N of the evaluated set = {points[0].log_n_bits:.2f}",
    )
    ax.axhline(fac, color="0.5", ls="-.", lw=1, label=f"factor entropy {fac:.2f}")
    ax.set_xticks(x)
    ax.set_xticklabels([p.label for p in points], fontsize=8)
    ax.set_ylabel("bits per image")
    ax.set_title("R = I(X;Z) + KL(q(z)||p(z)) per run (ELBO surgery)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p2 = out / "sweep_split.png"
    fig.savefig(p2, format="png")
    return [p1, p2]


__all__ = ["CSV_FIELDS", "factor_bits", "plot_sweep", "read_csv", "write_csv"]
