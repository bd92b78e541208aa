"""The report's PNGs, drawn with matplotlib's Agg canvas (no pyplot: no global backend, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from ..units import nats_to_bits


def _figure(w: float, h: float) -> Any:
    # matplotlib is the slowest import here (seconds on a small machine): only a plot pays for it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Union[str, Path]) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def curves(s: dict[str, Any], path: Union[str, Path]) -> Path:
    """R and D (bits per image) against step, with the budget lines."""
    hist, b = s["history"], s["budget"]
    steps = [r["step"] for r in hist]
    fig = _figure(10, 4)
    ax_r, ax_d = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ax_r.plot(
        steps, [r["rate_bits"] for r in hist], "-o", ms=3, color="C0", label="rate R (training batches)"
    )
    if b["budget_bits"] is not None:
        ax_r.axhline(
            b["budget_bits"], color="k", ls="--", lw=1, label=f"budget H = {b['budget_bits']:.2f} bits"
        )
    if b["empirical_bits"] is not None and b["factor_bits"] is not None:
        ax_r.axhline(
            b["factor_bits"], color="0.5", ls=":", lw=1, label=f"factor entropy {b['factor_bits']:.2f} bits"
        )
    ax_r.scatter(
        [s["steps"]],
        [s["final"]["rate_bits"]],
        marker="*",
        s=120,
        color="C3",
        zorder=5,
        label="final (training set)",
    )
    ax_r.set_xlabel("step")
    ax_r.set_ylabel("bits per image")
    ax_r.set_title("rate R = KL")
    ax_r.set_ylim(bottom=0)
    ax_r.legend(fontsize=8)
    ax_d.plot(steps, [r["distortion_bits"] for r in hist], "-o", ms=3, color="C1", label="distortion D")
    if b["marginal_sum_bits"] is not None:
        ax_d.axhline(
            b["marginal_sum_bits"],
            color="k",
            ls="--",
            lw=1,
            label=f"Σ H(X_i) = {b['marginal_sum_bits']:.0f} bits (rate 0)",
        )
    ax_d.scatter(
        [s["steps"]],
        [s["final"]["distortion_bits"]],
        marker="*",
        s=120,
        color="C3",
        zorder=5,
        label="final (training set)",
    )
    if (
        min([r["distortion_bits"] for r in hist] + [s["final"]["distortion_bits"]]) > 0
    ):  # a density's D can be < 0
        ax_d.set_yscale("log")
    ax_d.set_xlabel("step")
    ax_d.set_ylabel("bits per image")
    ax_d.set_title("distortion D = reconstruction")
    ax_d.legend(fontsize=8)
    return _save(fig, path)


def kl_bars(s: dict[str, Any], path: Union[str, Path]) -> Path:
    """Final KL per latent dimension, bits, with the active-unit threshold."""
    f = s["final"]
    z = s["z_dim"]
    kl = [f[f"kl_{i}_bits"] for i in range(z)]
    thr = nats_to_bits(f["active_threshold_nats"])
    fig = _figure(6, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.bar(range(z), kl, color=["C0" if v > thr else "0.7" for v in kl])
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in kl], fontsize=7, padding=2)
    ax.axhline(thr, color="k", ls=":", lw=1, label=f"active threshold {thr:.3f} bits")
    ax.set_xticks(range(z))
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL, bits per image")
    ax.set_title(f"R = {f['rate_bits']:.2f} bits over {z} latents, {int(f['active_units'])} active")
    ax.legend(fontsize=8)
    return _save(fig, path)


def reconstructions(inputs: torch.Tensor, recon: torch.Tensor, path: Union[str, Path]) -> Path:
    """Inputs ``[N, C, H, W]`` over their reconstructions (mean images), in [0, 1], one column each: grey for
    one channel, RGB for three, the first channel otherwise."""
    n = inputs.shape[0]
    fig = _figure(1.1 * n, 2.4)
    for i in range(n):
        for row, img in enumerate((inputs[i], recon[i])):
            ax = fig.add_subplot(2, n, row * n + i + 1)
            pic = img.detach().cpu().float().clamp(0, 1)
            pic = pic.permute(1, 2, 0) if pic.shape[0] == 3 else pic[0]
            ax.imshow(pic.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel("input" if row == 0 else "recon", fontsize=8)
    return _save(fig, path)


def rd_plane(s: dict[str, Any], path: Union[str, Path]) -> Path:
    """D against R (bits): the run's trajectory and, where the final figures carry the bound (D a code length
    of the data, H known), the impossible region D >= H - R, the rate-0 point and the chord."""
    hist, b, f = s["history"], s["budget"], s["final"]
    h = f.get("budget_bits")
    marg = b["marginal_sum_bits"] if h is not None else None
    r = np.array([x["rate_bits"] for x in hist])
    d = np.array([x["distortion_bits"] for x in hist])
    fig = _figure(6.5, 5)
    ax = fig.add_subplot(1, 1, 1)
    r_max = max(float(r.max()) if len(r) else 0.0, f["rate_bits"], h or 0.0) * 1.15
    rr = np.linspace(0, r_max, 400)
    if h is not None:
        bound = h - rr
        ax.fill_between(
            rr,
            1e-3,
            np.maximum(bound, 1e-3),
            where=bound > 0,
            color="C3",
            alpha=0.15,
            label=f"impossible: D + R < H = {h:.2f} bits",
        )
        ax.plot(rr[bound > 0], bound[bound > 0], color="C3", lw=1)
    if marg is not None:
        chord = marg * (1 - np.clip(rr, 0, h) / h)
        ok = chord > 0
        ax.plot(rr[ok], chord[ok], color="0.4", ls="--", lw=1, label="chord (0, Σ H(X_i)) to (H, 0)")
        ax.scatter(
            [0], [marg], color="k", marker="s", zorder=5, label=f"rate 0: D = Σ H(X_i) = {marg:.0f} bits"
        )
    if len(r):
        sc = ax.scatter(r, d, c=[x["step"] for x in hist], cmap="viridis", s=14, zorder=4)
        ax.plot(r, d, color="0.6", lw=0.6, zorder=3)
        fig.colorbar(sc, ax=ax, label="step")
    ax.scatter(
        [f["rate_bits"]],
        [f["distortion_bits"]],
        marker="*",
        s=200,
        color="C3",
        zorder=6,
        label=f"final: R = {f['rate_bits']:.2f}, D = {f['distortion_bits']:.1f} bits",
    )
    ax.set_xlim(0, r_max)
    if h is not None:  # code lengths are positive: a log axis
        d_hi = max(float(d.max()) if len(d) else 0.0, marg or 0.0, f["distortion_bits"]) * 1.5
        ax.set_yscale("log")
        ax.set_ylim(max(1.0, min(h * 0.05, float(d.min()) * 0.5 if len(d) else h)), d_hi)
        ax.set_ylabel("distortion D, bits per image (log)")
    else:
        ax.set_ylabel("distortion D, bits per image")
    ax.set_xlabel("rate R = KL, bits per image")
    ax.set_title("rate-distortion plane" + ("" if h is not None else " (no bound: see report.md)"))
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, path)
