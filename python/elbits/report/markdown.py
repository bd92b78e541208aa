"""report.md: the data's budget, the final rate and distortion against it, and the seed's table, measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from ..units import NATS_PER_BIT
from .summary import no_bound_reason

PLOTS = {
    "curves.png": "Training curves: rate R and distortion D in bits per image, with the budget",
    "kl_per_dim.png": "KL per latent dimension after training, bits per image",
    "reconstructions.png": "Inputs (top) and reconstructions at z = mean (bottom)",
    "rd_plane.png": "The rate-distortion plane: the run's trajectory and the bounds",
}


def _f(x: Optional[float], nd: int = 3) -> str:
    """Fixed-point number as the report prints it (tests parse these)."""
    if x is None:
        return "n/a"
    return f"{x:.{nd}f}"


def _g(x: Optional[float]) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4g}"


def plot_section(plots: dict[str, str]) -> list[str]:
    """The report's "Plots" section: each PNG file name with its caption."""
    out = ["## Plots", ""]
    for name, caption in plots.items():
        out += [f"**{caption}**", "", f"![{caption}]({name})", ""]
    return out


def log_rows(hist: list[dict[str, Any]], keep: int = 10) -> list[dict[str, Any]]:
    """About ``keep`` evenly spaced records of a training log, always with the last one."""
    every = max(1, len(hist) // keep)
    return hist[::every] + ([hist[-1]] if (len(hist) - 1) % every else [])


def render(s: dict[str, Any], plots: Optional[dict[str, str]] = None) -> str:
    """The report as markdown from :func:`~elbits.report.summary.build_summary`'s dict."""
    f, b, cfg = s["final"], s["budget"], s["config"]
    h = b["budget_bits"]
    plots = PLOTS if plots is None else plots
    out: list[str] = ["# elbits demo report", ""]
    if s.get("command"):
        out += [f"Command: `{s['command']}`", ""]
    ctrl = cfg["controller"]
    ctrl_txt = {
        "fixed": f"fixed beta = {cfg['beta']:g}",
        "capacity": f"capacity annealing to {cfg['capacity_bits']:g} bits, gamma = {cfg['gamma']:g}",
        "geco": f"GECO, distortion target {cfg['target_bits']} bits",
        "target-rate": "target rate "
        + (f"{cfg['target_bits']:g} bits" if cfg["target_bits"] is not None else f"= H(X) = {_f(h)} bits")
        + f", starting at beta = {cfg['beta']:g}",
    }[ctrl]
    wall = f"; {s['wall_s']:.1f} s in all (budget, training, evaluation, plots)" if s.get("wall_s") else ""
    out += [
        "## Run",
        "",
        f"- data: {b['source']}"
        + (f", drawn without replacement (data seed {cfg['data_seed']})" if cfg["train_size"] else ""),
        f"- model: {s['model']}, Z = {s['z_dim']}, {s.get('likelihood', 'bernoulli')} likelihood over "
        f"{s['dims']} "
        f"subpixels (the decoder returns {s.get('decoder_output') or 'logits'}); "
        f"loss: `elbits.ELBOLoss`, {ctrl_txt}",
        f"- {s['steps']} steps of AdamW (lr {cfg['lr']:g}, weight decay {cfg['weight_decay']:g}), "
        f"batch {cfg['batch_size']} x {s['world_size']} process(es), seed {cfg['seed']}",
        f"- wall time: {s['train_s']:.1f} s of training{wall}; {s['threads']} torch threads, "
        f"torch {s['torch']}, {s['machine']}",
        "",
        "## The data's budget (bits per image, computed in this run)",
        "",
        "| quantity | bits | nats | over |",
        "|---|---|---|---|",
    ]
    if b["factor_bits"] is not None:
        out.append(
            f"| factor entropy log(1·3·6·40·32·32) | {_f(b['factor_bits'])} | "
            f"{_f(b['factor_bits'] * NATS_PER_BIT)} | the whole dSprites grid (737,280 images), exact |"
        )
    if b["empirical_bits"] is not None:
        out.append(
            f"| empirical H(X) | {_f(b['empirical_bits'])} | {_f(b['empirical_bits'] * NATS_PER_BIT)} | "
            f"the {b['images']} training images ({b['distinct']} distinct), exact for their uniform "
            "distribution |"
        )
    if b["marginal_sum_bits"] is not None and b["empirical_bits"] is not None:
        tc = b["marginal_sum_bits"] - b["empirical_bits"]
        out += [
            f"| Σ_i H(X_i), pixel marginals | {_f(b['marginal_sum_bits'])} | "
            f"{_f(b['marginal_sum_bits'] * NATS_PER_BIT)} | the training images |",
            f"| total correlation Σ_i H(X_i) − H(X) | {_f(tc)} | {_f(tc * NATS_PER_BIT)} | the training "
            "images |",
        ]
    if b["empirical_bits"] is not None:
        out += [
            "",
            f"The budget H in the bound below is H(X) of the training set, {_f(h)} bits: the distribution "
            "the "
            "final figures are measured on. A decoder that ignores z can reach D = Σ_i H(X_i) at R = 0; "
            "with D = 0 the rate must be at least H(X).",
        ]
        if s.get("exchange"):
            out += [
                f"On average one bit of rate buys Σ_i H(X_i) / H(X) = {_g(s['exchange']['price'])} bits of "
                "distortion (`elbits.calibrate.exchange_theory`).",
            ]
    elif h is not None:
        out += [
            "",
            f"H(X) of the training set was not computed ({b['images']} images); the budget H below is "
            f"the factor entropy, {_f(h)} bits, an upper bound on the grid's H(X).",
        ]
    else:
        out += [
            "",
            f"H(X) of the training set is unknown ({b.get('note') or 'not computed'}): no budget, no bound.",
        ]
    z = s.get("eval_z") or "sampled from q(z|x)"
    out += [
        "",
        f"## Final rate and distortion (one pass over {_over(int(f['samples']), b['images'])} after step "
        f"{s['steps']}, eval mode, z {z})",
        "",
        "| quantity | bits/image | nats/image | bits/dim |",
        "|---|---|---|---|",
        f"| rate R = KL | {_f(f['rate_bits'])} | {_f(f['rate_nats'])} | {f['rate_bits_per_dim']:.6f} |",
        f"| distortion D = reconstruction | {_f(f['distortion_bits'])} | {_f(f['distortion_nats'])} | "
        f"{f['distortion_bits_per_dim']:.6f} |",
        f"| negative ELBO D + R | {_f(f['nelbo_bits'])} | {_f(f['nelbo_nats'])} | "
        f"{f['nelbo_bits_per_dim']:.6f} |",
    ]
    units = (
        f"Active units: **{int(f['active_units'])} of {s['z_dim']}** (mean KL > "
        f"{f['active_threshold_nats']:g} nats)."
    )
    if "bound_slack_bits" in f:
        out += [
            f"| budget H | {_f(f['budget_bits'])} | {_f(f['budget_nats'])} | |",
            f"| bound H − D | {_f(f['bound_bits'])} | {_f(f['bound_nats'])} | |",
            f"| slack R − (H − D) | {_f(f['bound_slack_bits'])} | {_f(f['bound_slack_nats'])} | |",
            "",
            f"Bound H − D ≤ R: {_f(f['bound_bits'])} ≤ {_f(f['rate_bits'])} bits, slack "
            f"{_f(f['bound_slack_bits'])} "
            f"bits ({'holds' if f['bound_slack_bits'] >= 0 else 'VIOLATED: check units or the budget'}). "
            f"R is {_g(f['rate_over_budget'])} x the budget. " + units,
        ]
    else:
        out += ["", f"No bound H − D ≤ R: {no_bound_reason(s)}. " + units]
    out += [
        "",
        "| latent | " + " | ".join(str(i) for i in range(s["z_dim"])) + " |",
        "|---|" + "---|" * s["z_dim"],
        "| KL (bits) | " + " | ".join(_f(f[f"kl_{i}_bits"]) for i in range(s["z_dim"])) + " |",
        "",
    ]
    am, asum = s["audit_mean"], s["audit_sum"]
    out += [
        "## The seed's table, measured: w_recon = 0.8, w_kld = 0.2",
        "",
        "`elbits.calibrate.audit` on the final figures. The seed's weights applied to a reconstruction "
        "averaged "
        f'over the {s["dims"]} pixels (torch\'s default `reduction="mean"`) and a KL summed over the '
        "latents:",
        "",
        _audit_table(am),
        "",
        f"Effective beta **{_g(am['beta'])}** (ELBO: 1). With the reconstruction summed over the pixels the "
        "same "
        f"weights are beta = {_g(asum['beta'])}:",
        "",
        _audit_table(asum),
        "",
        f"This run trained with beta = **{_g(s['run_beta'])}** at its last step ({ctrl_txt}), "
        f"on `D + beta R` with both terms per-sample sums in nats.",
        "",
        f"> {am['verdict']}",
        "",
    ]
    out += plot_section(plots)
    hist = s["history"]
    if hist:
        rows = log_rows(hist)
        out += [
            "## Training log (running means since the previous record, bits per image)",
            "",
            "| step | R (bits) | D (bits) | beta | active units | wall (s) |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            out.append(
                f"| {r['step']} | {_f(r['rate_bits'], 2)} | {_f(r['distortion_bits'], 1)} | {_g(r['beta'])} "
                "| "
                f"{int(r['active_units'])} | {r['wall_s']:.0f} |"
            )
        out.append("")
    return "\n".join(out)


def _over(samples: int, images: int) -> str:
    if samples >= images:
        return f"the {images} training images"
    return f"{samples} evenly spaced of the {images} training images"


def _audit_table(a: dict[str, Any]) -> str:
    unit = {"mean": "nats/pixel", "sum": "nats/sample"}[a["recon_reduction"]]
    lines = [
        "| term | weight | actual (nats/sample) | actual (bits/sample) | as computed | weighted (nats) | "
        "weighted (bits) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in a["rows"]:
        u = unit if row["term"] == "recon" else "nats/sample"
        name = "L_recon" if row["term"] == "recon" else "L_kl"
        lines.append(
            f"| {name} | {row['weight']:g} | {_f(row['actual_nats'])} | {_f(row['actual_bits'])} | "
            f"{_g(row['as_computed'])} {u} | {_g(row['weighted'])} | {_g(row['weighted_bits'])} |"
        )
    lines.append(f"| total | | | | | {_g(a['loss'])} | {_g(a['loss_bits'])} |")
    return "\n".join(lines)


def write_report(path: Union[str, Path], s: dict[str, Any], plots: Optional[dict[str, str]] = None) -> Path:
    path = Path(path)
    path.write_text(render(s, plots))
    return path
