"""The report of a colour run (``elbits demo colour``): report.md with the final figures in bits/image and
bits/dim and the bounds table on the data's entropy, summary.json, and the PNGs (training curves, KL per
latent, reconstructions and samples in colour, the rate-distortion plane with the codecs' bounds)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..entropy.images import ImageBounds
from . import plots
from .images import save_grid
from .markdown import _f, log_rows, plot_section

PLOTS = {
    "curves.png": "Training curves: rate R and distortion D in bits per image",
    "kl_per_dim.png": "KL per latent dimension after training, bits per image",
    "reconstructions.png": "Training patches (top) and their reconstructions at z = mean (bottom), the "
    "decoder's mean image",
    "samples.png": "Samples: the decoder's mean image at z ~ N(0, I)",
    "rd_plane.png": "The rate-distortion plane in bits/dim: the run's trajectory, the lines R + D = each "
    "codec's bits (below a line the model's code is shorter) and H(set) − D ≤ R",
}

#: The bounds rows the report compares the model's -ELBO with, by key, as the table names them.
CODECS = ("png", "webp", "jpegxl")


def _row_bpd(bounds: dict[str, Any], key: str) -> Optional[float]:
    for r in bounds["rows"]:
        if r["key"] == key:
            return float(r["bits_per_dim"])
    return None


def comparison(s: dict[str, Any]) -> list[tuple[str, float, bool]]:
    """``(codec name, its bits/dim, whether the model's -ELBO is below it)`` for PNG, WebP and JPEG-XL
    lossless, where measured."""
    f, b = s["final"], s["bounds"]
    out = []
    for r in b["rows"]:
        if r["key"] in CODECS:
            out.append((r["name"], float(r["bits_per_dim"]), f["nelbo_bits_per_dim"] < r["bits_per_dim"]))
    return out


def rd_plane_bpd(s: dict[str, Any], path: Union[str, Path]) -> Path:
    """D against R in bits/dim: the run's trajectory and final point, the iso-code-length lines
    R + D = B of the per-image codecs and of raw 8 bits/dim, and the bound D >= H(set) - R."""
    hist, f, b = s["history"], s["final"], s["bounds"]
    dims = float(s["dims"])
    r = np.array([x["rate_bits"] for x in hist]) / dims
    d = np.array([x["distortion_bits"] for x in hist]) / dims
    fig = plots._figure(6.8, 5)
    ax = fig.add_subplot(1, 1, 1)
    lines = [(row["name"], float(row["bits_per_dim"])) for row in b["rows"] if row["key"] in (*CODECS, "raw")]
    top = max([v for _, v in lines] + list(d) + [f["distortion_bits_per_dim"]]) * 1.1
    r_max = max([f["rate_bits_per_dim"] * 1.6, *(r * 1.1 if len(r) else [0.0]), 0.05 * top])
    rr = np.linspace(0, r_max, 200)
    for i, (name, v) in enumerate(lines):
        ax.plot(rr, v - rr, ls="--", lw=1, color=f"C{i + 1}", label=f"R + D = {name}: {v:.3f} bits/dim")
    h_set = _row_bpd(b, "set")
    if h_set is not None:
        ax.plot(
            rr, np.maximum(h_set - rr, 0), color="C3", lw=1, label=f"D = H(set) − R, H(set) = {h_set:.4f}"
        )
    if len(r):
        sc = ax.scatter(r, d, c=[x["step"] for x in hist], cmap="viridis", s=14, zorder=4)
        ax.plot(r, d, color="0.6", lw=0.6, zorder=3)
        fig.colorbar(sc, ax=ax, label="step")
    ax.scatter(
        [f["rate_bits_per_dim"]],
        [f["distortion_bits_per_dim"]],
        marker="*",
        s=200,
        color="C3",
        zorder=6,
        label=f"final: -ELBO = {f['nelbo_bits_per_dim']:.3f} bits/dim",
    )
    ax.set_xlim(0, r_max)
    ax.set_ylim(0, top)
    ax.set_xlabel("rate R = KL, bits/dim")
    ax.set_ylabel("distortion D, bits/dim")
    ax.set_title("rate-distortion plane, bits per subpixel")
    ax.legend(fontsize=7, loc="lower left")
    return plots._save(fig, path)


def render(s: dict[str, Any], bounds: ImageBounds) -> str:
    """report.md of a colour run from its summary (:func:`~elbits.report.summary.build_summary` plus
    ``bounds``, ``load_average``, ``bounds_s``) and its bounds table."""
    f, cfg, b = s["final"], s["config"], s["budget"]
    dims = int(s["dims"])
    out = ["# elbits demo colour report", ""]
    if s.get("command"):
        out += [f"Command: `{s['command']}`", ""]
    load = s.get("load_average")
    load_txt = (
        f"; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)" if load else ""
    )
    wall = f", {s['wall_s']:.1f} s in all (training, bounds, plots)" if s.get("wall_s") else ""
    out += [
        "## Run",
        "",
        f"- data: {b['source']}",
        f"- model: {s['model']}, Z = {s['z_dim']}, {s['likelihood']} likelihood"
        + (f" (K = {cfg['mixture_components']})" if s["likelihood"] == "logistic_mixture" else "")
        + f" over {dims} subpixels; loss: `elbits.ELBOLoss`, "
        + (
            f"fixed beta = {cfg['beta']:g}"
            if cfg["controller"] == "fixed"
            else f"controller {cfg['controller']}"
        ),
        f"- {s['steps']} steps of AdamW (lr {cfg['lr']:g}), batch {cfg['batch_size']} x {s['world_size']} "
        f"process(es), seed {cfg['seed']}",
        f"- wall time: {s['train_s']:.1f} s of training{wall}; bounds table {s.get('bounds_s', 0):.1f} s; "
        f"{s['threads']} torch threads, torch {s['torch']}, {s['machine']}{load_txt}",
        "",
        f"## Final rate and distortion (one pass over the training images after step {s['steps']}, eval "
        f"mode, z {s.get('eval_z') or 'sampled from q(z|x)'})",
        "",
        "| quantity | bits/image | bits/dim |",
        "|---|---|---|",
        f"| rate R = KL | {_f(f['rate_bits'])} | {f['rate_bits_per_dim']:.4f} |",
        f"| distortion D = reconstruction | {_f(f['distortion_bits'])} | "
        f"{f['distortion_bits_per_dim']:.4f} |",
        f"| negative ELBO D + R | {_f(f['nelbo_bits'])} | {f['nelbo_bits_per_dim']:.4f} |",
        "",
    ]
    cmp = comparison(s)
    if cmp:
        parts = [f"{name} {v:.3f} ({'beaten' if below else 'not beaten'})" for name, v, below in cmp]
        out += [
            f"The model's −ELBO, **{f['nelbo_bits_per_dim']:.3f} bits/dim**, against the lossless codecs on "
            f"the same patches: {', '.join(parts)}. The −ELBO is a code length (bits-back coding achieves "
            "it, see the codec rows below) but on the images the model was trained on it bounds H(set), "
            "not H(p): a held-out set would say more.",
            "",
        ]
    if "bound_slack_bits" in f:
        out += [
            f"Bound H − D ≤ R with H = H(set) = {_f(f['budget_bits'])} bits: {_f(f['bound_bits'])} ≤ "
            f"{_f(f['rate_bits'])} bits ({'holds' if f['bound_slack_bits'] >= 0 else 'VIOLATED'}); "
            "for photographs D is thousands of bits and the bound is far from tight.",
            "",
        ]
    z = int(s["z_dim"])
    out += [
        f"Active units: **{int(f['active_units'])} of {z}** (mean KL > {f['active_threshold_nats']:g} nats).",
        "",
        "| latent | " + " | ".join(str(i) for i in range(z)) + " |",
        "|---|" + "---|" * z,
        "| KL (bits) | " + " | ".join(_f(f[f"kl_{i}_bits"], 2) for i in range(z)) + " |",
        "",
        "## Bounds on the patches' entropy (`elbits.entropy.image_bounds`, with the trained model)",
        "",
        bounds.to_markdown(),
        "",
    ]
    out += plot_section(PLOTS)
    hist = s["history"]
    if hist:
        rows = log_rows(hist)
        out += [
            "## Training log (running means since the previous record)",
            "",
            "| step | R (bits) | D (bits) | −ELBO (bits/dim) | wall (s) |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            bpd = (r["rate_bits"] + r["distortion_bits"]) / dims
            out.append(
                f"| {r['step']} | {r['rate_bits']:.2f} | {r['distortion_bits']:.1f} | {bpd:.4f} | "
                f"{r['wall_s']:.0f} |"
            )
        out.append("")
    return "\n".join(out)


def write_colour_report(
    s: dict[str, Any],
    bounds: ImageBounds,
    out_dir: Union[str, Path],
    inputs: torch.Tensor,
    recon: torch.Tensor,
    samples: torch.Tensor,
    t0: Optional[float] = None,
) -> dict[str, Any]:
    """report.md, summary.json (``s`` with ``bounds``) and the five PNGs under ``out_dir``; returns ``s``.
    ``inputs`` over ``recon`` and ``samples``: ``[N, C, H, W]`` in [0, 1]. ``t0``: a
    ``time.perf_counter()`` start; when given, ``s["wall_s"]`` is the time from it to after the plots."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s["bounds"] = bounds.to_dict()
    plots.curves(s, out / "curves.png")
    plots.kl_bars(s, out / "kl_per_dim.png")
    save_grid([inputs, recon], out / "reconstructions.png")
    save_grid([samples], out / "samples.png")
    rd_plane_bpd(s, out / "rd_plane.png")
    if t0 is not None:
        s["wall_s"] = time.perf_counter() - t0
    (out / "report.md").write_text(render(s, bounds))
    (out / "summary.json").write_text(json.dumps(s, indent=1, default=str) + "\n")
    return s


def colour_terminal_table(s: dict[str, Any], report_path: str) -> str:
    """The short summary ``elbits demo colour`` prints: R, D, -ELBO and the codecs in bits/dim."""
    f, b = s["final"], s["budget"]
    lines = [
        f"elbits demo colour: {s['model']} (Z = {s['z_dim']}, {s['likelihood']}) on {b['source']}, "
        f"{s['steps']} steps, {s['train_s']:.0f} s of training"
        + (f", {s['wall_s']:.0f} s in all" if s.get("wall_s") else "")
        + f" ({s['threads']} threads)",
        f"{'':<34}{'bits/image':>12}{'bits/dim':>10}",
        f"{'rate R (KL)':<34}{f['rate_bits']:>12.2f}{f['rate_bits_per_dim']:>10.4f}",
        f"{'distortion D (recon)':<34}{f['distortion_bits']:>12.2f}{f['distortion_bits_per_dim']:>10.4f}",
        f"{'-ELBO = D + R':<34}{f['nelbo_bits']:>12.2f}{f['nelbo_bits_per_dim']:>10.4f}",
    ]
    for r in s["bounds"]["rows"]:
        if r["key"] in (*CODECS, "bitsback_net"):
            lines.append(f"{r['name'][:33]:<34}{r['bits_per_image']:>12.2f}{r['bits_per_dim']:>10.4f}")
    lines += [f"{'active units':<34}{int(f['active_units']):>9d}/{s['z_dim']}", f"report: {report_path}"]
    return "\n".join(lines)


__all__ = [
    "CODECS",
    "PLOTS",
    "colour_terminal_table",
    "comparison",
    "rd_plane_bpd",
    "render",
    "write_colour_report",
]
