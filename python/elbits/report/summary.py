"""The numbers of a run's report, gathered once (JSON-ready) so that report.md, the plots and the terminal
table all print the same values."""

from __future__ import annotations

import math
import platform
from typing import Any, Optional

import torch

from ..calibrate import audit, exchange_theory
from ..units import BITS_PER_NAT

SEED_WEIGHTS = (0.8, 0.2)  # the seed's w_recon, w_kld


def _audit_dict(final: dict[str, float], reduction: str, dims: int) -> dict[str, Any]:
    a = audit(final, *SEED_WEIGHTS, recon_reduction=reduction, kl_reduction="sum", dims=dims)
    return {
        "recon_reduction": reduction,
        "beta": a.beta,
        "scale": a.scale,
        "rows": a.rows(),
        "loss": a.loss,
        "loss_bits": a.loss * BITS_PER_NAT,
        "verdict": a.verdict,
    }


def build_summary(result: Any, cfg: Any, wall_s: Optional[float] = None, command: str = "") -> dict[str, Any]:
    """Everything the report prints, from a :class:`~elbits.train.TrainResult` with ``final`` figures."""
    final = result.final
    if final is None:
        raise ValueError("the report needs the end-of-run evaluation (TrainConfig.eval_at_end=True)")
    dims, z = int(final["dims"]), int(final["z_dim"])
    budget = result.budget.to_dict()
    exchange = None
    if budget["marginal_sum_bits"] is not None and budget["empirical_bits"]:
        th = exchange_theory(budget["empirical_bits"], budget["marginal_sum_bits"])
        exchange = {
            "price": th.price,
            "total_correlation_bits": th.total_correlation_bits,
            "chord_distortion_bits": th.chord_distortion_bits(final["rate_bits"]),
        }
    hist = [
        {k: r.get(k) for k in ("step", "rate_bits", "distortion_bits", "beta", "active_units", "wall_s")}
        for r in result.history
    ]
    head = getattr(result, "head", None)
    return {
        "command": command,
        "config": cfg.to_dict(),
        "model": type(result.model).__name__,
        "likelihood": cfg.likelihood,
        "decoder_output": head.kind if head is not None else cfg.decoder_output,
        "eval_z": getattr(result, "eval_z", None),
        # Whether the final figures carry the bound H - D <= R (D a code length of the data, H known).
        "bound": "budget_bits" in final,
        "z_dim": z,
        "dims": dims,
        "steps": result.step,
        "train_s": result.seconds,
        "wall_s": wall_s,
        "threads": torch.get_num_threads(),
        "world_size": result.world,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {platform.system()}",
        "budget": budget,
        "final": dict(final),
        "run_beta": float(final.get("beta", math.nan)),
        "exchange": exchange,
        "audit_mean": _audit_dict(final, "mean", dims),
        "audit_sum": _audit_dict(final, "sum", dims),
        "history": hist,
    }


def no_bound_reason(s: dict[str, Any]) -> str:
    """Why a run's final figures carry no bound H - D <= R."""
    b = s["budget"]
    if b["budget_bits"] is None:
        return "H(X) unknown"
    if s.get("likelihood", "bernoulli") == "bernoulli":
        return "the images are not binary: D is a cross-entropy, not a code length"
    return f"D of {s.get('likelihood')} is a density here, not a code length of the images"


def terminal_table(s: dict[str, Any], report_path: str) -> str:
    """The short summary the demo prints."""
    f, b = s["final"], s["budget"]
    lines = [f"{'':<34}{'bits/image':>12}"]
    if b["factor_bits"] is not None:
        lines.append(f"{'factor entropy (dSprites grid)':<34}{b['factor_bits']:>12.2f}")
    if b["empirical_bits"] is not None:
        lines.append(f"{'H(X) of the training set':<34}{b['empirical_bits']:>12.2f}")
    else:
        lines.append(f"{'H(X) of the training set':<34}{'unknown':>12}  ({b.get('note') or 'not computed'})")
    if b["marginal_sum_bits"] is not None:
        lines.append(f"{'sum_i H(X_i) (pixel marginals)':<34}{b['marginal_sum_bits']:>12.2f}")
    lines += [
        f"{'rate R (KL)':<34}{f['rate_bits']:>12.2f}",
        f"{'distortion D (recon)':<34}{f['distortion_bits']:>12.2f}",
        f"{'-ELBO = D + R':<34}{f['nelbo_bits']:>12.2f}",
    ]
    if "bound_slack_bits" in f:
        lines += [
            f"{'bound H - D <= R: H - D':<34}{f['bound_bits']:>12.2f}",
            f"{'slack R - (H - D)':<34}{f['bound_slack_bits']:>12.2f}",
        ]
    else:
        lines.append(f"{'bound H - D <= R':<34}{'n/a':>12}  ({no_bound_reason(s)})")
    lines += [
        f"{'active units':<34}{int(f['active_units']):>9d}/{s['z_dim']}",
        f"{'beta of this run (last step)':<34}{s['run_beta']:>12.4g}",
        f"{'seed weights (0.8, 0.2): beta':<34}{s['audit_mean']['beta']:>12.4g}  (recon averaged over "
        f"{s['dims']} pixels; {s['audit_sum']['beta']:.4g} if summed)",
    ]
    train = f"{s['train_s']:.0f} s of training" + (f", {s['wall_s']:.0f} s in all" if s["wall_s"] else "")
    head = (
        f"elbits demo: {s['model']} (Z = {s['z_dim']}, {s.get('likelihood', 'bernoulli')} likelihood) on "
        f"{b['source']}, {s['steps']} steps, {train} ({s['threads']} threads)"
    )
    return "\n".join([head, *lines, f"report: {report_path}"])
