"""What ``elbits evaluate`` prints and writes: the text report, the PNG and a CSV row of an evaluation.

Each takes the ``--json`` object (:meth:`elbits.experiments.evaluate.Evaluation.to_dict`, or the
:class:`~elbits.experiments.evaluate.Evaluation` itself), so a saved result renders the same as a fresh one.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Union

from .images import image_grid

PathLike = Union[str, Path]


def _as_dict(ev: Any) -> dict[str, Any]:
    return ev.to_dict() if hasattr(ev, "to_dict") else dict(ev)


def format_text(ev: Any) -> str:
    """The human-readable report of ``elbits evaluate``."""
    d = _as_dict(ev)
    kl = " ".join(f"{v:.2f}" for v in d["kl_per_dim_bits"])
    mk = " ".join(f"{v:.2f}" for v in d["marginal_kl_per_dim_bits"])
    fac, over = d.get("factor_bits"), d.get("rate_over_factor_entropy")
    colour = bool(d["model"].get("colour"))
    factor = (
        "" if fac is None else f", {'factor grid' if colour else 'dSprites factor'} entropy = {fac:.3f} bits"
    )
    lines = [
        f"model: {d['model'].get('kind', '?')} {d['model'].get('path', '')}",
        f"data: {d['source']}; H(X) = {d['h_bits']:.3f} bits ({d['distinct_images']} distinct), "
        f"log2 N = {d['log_n_bits']:.3f}{factor}",
        f"rate R = KL(q(z|x)||p(z))   {d['rate_bits']:8.3f} bits/image"
        + ("" if over is None else f" ({over:.2f} x the factor entropy)"),
        f"distortion D (z ~ q(z|x), {d['distortion_samples']} samples)  "
        f"{d['distortion_bits']:8.3f} bits/image "
        f"(at z = mu: {d['distortion_mu_bits']:.3f})",
        f"negative ELBO R + D         {d['nelbo_bits']:8.3f} bits/image; bound H - D = "
        f"{d['bound_bits']:.3f}, "
        f"slack R - (H - D) = {d['bound_slack_bits']:.3f}",
        *_per_dim_line(d),
        f"KL per dimension (bits): {kl}",
        f"active units: {d['active_units']} (KL > {d['active_threshold_bits']:.4f} bits)",
        f"ELBO surgery: I(X;Z) = {d['mi_bits']:.3f} +- {d['mi_stderr_bits']:.3f} bits (<= log2 N = "
        f"{d['log_n_bits']:.3f}), "
        f"KL(q(z)||p(z)) = R - I = {d['marginal_kl_bits']:.3f} bits "
        f"(direct MC {d['marginal_kl_mc_bits']:.3f})",
        f"  leave-one-out I (upper bound for a larger set) = {_fmt(d['mi_loo_bits'])} bits; "
        f"{d['mi_points']} points x {d['mi_samples_per_point']} z samples against {d['images']} posteriors",
        f"  marginal KL(q(z_j)||N(0,1)) per dimension (bits): {mk}",
        f"time: {d['seconds']:.1f} s",
    ]
    return "\n".join(lines)


def _per_dim_line(d: dict[str, Any]) -> list[str]:
    if "nelbo_bits_per_dim" not in d:  # a --json object of an older elbits
        return []
    return [
        f"bits/dim over {d['dims']} subpixels: -ELBO {d['nelbo_bits_per_dim']:.4f}, "
        f"D {d['distortion_bits_per_dim']:.4f}, R {d['rate_bits_per_dim']:.4f}"
    ]


def plot_evaluation(ev: Any, path: PathLike) -> Path:
    """A PNG: KL per latent dimension (left) and R split into I(X;Z) and KL(q(z)||p(z)) against H(X),
    log2 N and the factor entropy (right), bits per image; with an evaluation's ``examples`` (a colour
    checkpoint's), a row of evaluated images over their reconstructions below, in colour."""
    # matplotlib is the slowest import here (seconds on a small machine): only a plot pays for it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    d = _as_dict(ev)
    examples = getattr(ev, "examples", None)
    fig = Figure(figsize=(9, 3.8 if examples is None else 6.0), dpi=90)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(
        1 if examples is None else 2, 2, height_ratios=None if examples is None else [3, 1.6]
    )
    ax, ax2 = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    kl = d["kl_per_dim_bits"]
    bars = ax.bar(range(len(kl)), kl, color="C0")
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in kl], fontsize=7, padding=2)
    ax.set_xticks(range(len(kl)))
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL(q(z_j|x)||N(0,1)), bits per image")
    ax.set_title(f"R = {d['rate_bits']:.1f} bits, {d['active_units']} active units", fontsize=10)
    ax2.bar([0], [d["mi_bits"]], color="C2", width=0.5, label=f"I(X;Z) = {d['mi_bits']:.2f}")
    ax2.bar(
        [0],
        [d["marginal_kl_bits"]],
        bottom=[d["mi_bits"]],
        color="C1",
        width=0.5,
        label=f"KL(q(z)||p(z)) = {d['marginal_kl_bits']:.2f}",
    )
    ax2.bar(
        [1],
        [d["distortion_bits"]],
        color="C7",
        width=0.5,
        label=f"D (z sampled) = {d['distortion_bits']:.1f}",
    )
    if d.get("factor_bits") is not None:
        ax2.axhline(
            d["factor_bits"], color="0.3", ls="-.", lw=1, label=f"factor entropy {d['factor_bits']:.2f}"
        )
    ax2.axhline(d["h_bits"], color="C3", ls="--", lw=1, label=f"H(X) of these images {d['h_bits']:.2f}")
    if abs(d["log_n_bits"] - d["h_bits"]) > 0.05:
        ax2.axhline(d["log_n_bits"], color="k", ls=":", lw=1, label=f"log2 N = {d['log_n_bits']:.2f}")
    ax2.set_xticks([0, 1])
    ax2.set_xticklabels(["rate R", "distortion D"])
    ax2.set_xlim(-0.6, 2.6)
    ax2.set_ylabel("bits per image")
    ax2.set_title(d["source"], fontsize=9)
    ax2.legend(fontsize=7, loc="upper right")
    if examples is not None:
        _examples_row(fig, grid[1, :], examples[0], examples[1], d)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _examples_row(fig: Any, cell: Any, inputs: Any, recon: Any, d: dict[str, Any]) -> None:
    """Inputs over reconstructions as one image grid in a subplot spanning ``cell``."""
    ax = fig.add_subplot(cell)
    pic = image_grid([inputs, recon])
    ax.imshow(pic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    per_dim = f", -ELBO {d['nelbo_bits_per_dim']:.3f} bits/dim" if "nelbo_bits_per_dim" in d else ""
    ax.set_title(f"evaluated images (top) and reconstructions at z = mu (bottom){per_dim}", fontsize=9)


CSV_KEYS = (
    "rate_bits",
    "distortion_bits",
    "distortion_mu_bits",
    "distortion_samples",
    "distortion_images",
    "mi_bits",
    "mi_stderr_bits",
    "marginal_kl_bits",
    "marginal_kl_mc_bits",
    "log_n_bits",
    "h_bits",
    "factor_bits",
    "marginal_sum_bits",
    "active_units",
    "images",
    "seconds",
)


def append_csv(result: dict[str, Any], path: PathLike, label: str) -> Path:
    """Append one row (``label``, the source, :data:`CSV_KEYS`, the KL per dimension) of an
    ``Evaluation.to_dict()`` (or ``--json`` output) to ``path``, writing the header when it is new."""
    path = Path(path)
    new = not path.is_file() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["run", "source", *CSV_KEYS, "kl_per_dim_bits"])
        vals = [result.get(k, result["images"] if k == "distortion_images" else "") for k in CSV_KEYS]
        w.writerow(
            [
                label,
                result["source"],
                *(f"{v:.6g}" if isinstance(v, float) else v for v in vals),
                " ".join(f"{v:.4g}" for v in result["kl_per_dim_bits"]),
            ]
        )
    return path


def _fmt(v: float) -> str:
    return f"{v:.3f}" if math.isfinite(v) and abs(v) < 1e6 else f"{v:.3g}"


__all__ = ["CSV_KEYS", "append_csv", "format_text", "plot_evaluation"]
