"""A rate-distortion sweep: train one VAE per beta (or per rate target), measure each one's (R, D) and the
ELBO-surgery split R = I(X;Z) + KL(q(z) || p(z)), and draw them against the data's bounds.

Each run is :func:`elbits.train.train` on the same training set; each trained model is then measured by
:func:`elbits.evaluate.evaluate_model` on that training set (all of it, or ``eval_images`` evenly spaced
images of a larger one): D averaged over ``samples`` draws z ~ q(z|x), I(X;Z) for x uniform over the
evaluated images. The bounds come from the training set's entropies (:func:`elbits.train.data_budget`,
computed with :mod:`elbits.entropy`): at rate 0 a decoder can do no better than D = sum_i H(X_i); no code
does better than D + R >= H(X). The frontier is the lower convex hull of the measured points
(:func:`elbits.calibrate.empirical_frontier`); its segment slopes -dD/dR are the measured exchange rate.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from . import calibrate
from .evaluate import Evaluation, evaluate_model
from .train import Budget, TrainConfig, build_dataset, data_budget, train

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


@dataclass
class SweepPoint:
    """One trained run, bits per image (see :data:`CSV_FIELDS`)."""

    label: str
    controller: str
    beta: float
    target_bits: Optional[float]
    final_beta: float
    steps: int
    train_size: int
    rate_bits: float
    distortion_bits: float
    distortion_mu_bits: float
    nelbo_bits: float
    mi_bits: float
    mi_stderr_bits: float
    marginal_kl_bits: float
    log_n_bits: float
    active_units: int
    h_bits: float
    factor_bits: float
    marginal_sum_bits: float
    bound_slack_bits: float
    eval_images: int
    distortion_samples: int
    train_s: float
    eval_s: float
    kl_per_dim_bits: tuple[float, ...] = ()

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in CSV_FIELDS}


@dataclass
class SweepResult:
    points: list[SweepPoint]
    budget: Budget
    out_dir: Path
    csv_path: Path
    plots: list[Path]
    seconds: float

    @property
    def frontier(self) -> calibrate.Frontier:
        return calibrate.empirical_frontier(
            [(p.rate_bits, p.distortion_bits) for p in self.points], labels=[p.label for p in self.points]
        )


def _label(beta: Optional[float], target: Optional[float]) -> str:
    return f"beta={beta:g}" if target is None else f"R*={target:g}"


def run_sweep(
    base: TrainConfig,
    betas: Sequence[float] = (),
    targets: Sequence[float] = (),
    *,
    out_dir: Union[str, Path] = "elbits-sweep",
    eval_images: Optional[int] = 4096,
    samples: int = 4,
    mi_points: Optional[int] = 1024,
    mi_samples: int = 4,
    plot: bool = True,
    init: Optional[Union[str, Path]] = None,
    log: Optional[Callable[[str], None]] = print,
) -> SweepResult:
    """Train ``base`` once per beta (controller ``fixed``) and once per rate target (controller
    ``target-rate``, bits), all on the same training set, then evaluate and write ``sweep.csv`` and the plots
    (``sweep_rd.png``, ``sweep_split.png``) under ``out_dir``; each run's files in ``out_dir/<label>/``.

    ``init``: start every run from this checkpoint (see :func:`elbits.evaluate.load_model`, e.g. the
    disentangling-vae beta = 1 model) instead of a fresh :class:`~elbits.models.BurgessVAE`: a short run then
    moves a trained model along the frontier, where a short run from scratch is still near rate 0."""
    if not betas and not targets:
        raise ValueError("give at least one beta or one rate target")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    dataset: Any = build_dataset(base.npz, base.train_size, base.data_seed)
    budget = data_budget(dataset)
    n = len(dataset)
    positions = (
        np.arange(n)
        if eval_images is None or n <= eval_images
        else np.unique(np.linspace(0, n - 1, eval_images).round().astype(np.int64))
    )
    eval_set = _Subset(dataset, positions)
    runs: list[tuple[Optional[float], Optional[float]]] = [(float(b), None) for b in betas]
    runs += [(None, float(t)) for t in targets]
    points: list[SweepPoint] = []
    for beta, target in runs:
        label = _label(beta, target)
        cfg = dataclasses.replace(
            base,
            controller="fixed" if target is None else "target-rate",
            beta=beta if beta is not None else base.beta,
            target_bits=target,
            out_dir=str(out / label.replace("=", "_").replace("*", "")),
            eval_at_end=False,
            resume=None,
        )
        model = None
        if init is not None:
            from .evaluate import load_model

            model = load_model(init)[0].train()
        res = train(cfg, model=model, dataset=dataset, budget=budget)
        ev = evaluate_model(
            res.model,
            eval_set,
            samples=samples,
            seed=base.seed,
            mi_points=mi_points,
            mi_samples=mi_samples,
            source=f"{len(eval_set)} training images",
        )
        p = _point(label, cfg, res.criterion.beta, n, ev, budget, res.seconds)
        points.append(p)
        if log is not None:
            log(
                f"{label}: R = {p.rate_bits:.2f} bits, D = {p.distortion_bits:.1f} bits, I(X;Z) = "
                f"{p.mi_bits:.2f}, "
                f"KL(q(z)||p) = {p.marginal_kl_bits:.2f} (train {p.train_s:.0f} s, eval {p.eval_s:.0f} s)"
            )
    csv_path = write_csv(points, out / "sweep.csv")
    plots = plot_sweep(points, budget, out) if plot else []
    return SweepResult(points, budget, out, csv_path, plots, time.perf_counter() - t_all)


class _Subset:
    """Positions of a dataset with an ``images`` batch read."""

    def __init__(self, dataset: Any, positions: np.ndarray) -> None:
        self.dataset, self.positions = dataset, positions

    def __len__(self) -> int:
        return len(self.positions)

    def images(self, items: Any) -> Any:
        from .train import fetch

        return fetch(self.dataset, self.positions[np.asarray(items, dtype=np.int64)])


def _point(
    label: str, cfg: TrainConfig, final_beta: float, n: int, ev: Evaluation, budget: Budget, train_s: float
) -> SweepPoint:
    d = ev.to_dict()
    h = budget.bits
    marg = budget.marginal_sum_bits if budget.marginal_sum_bits is not None else d["marginal_sum_bits"]
    return SweepPoint(
        label=label,
        controller=cfg.controller,
        beta=float(cfg.beta),
        target_bits=cfg.target_bits,
        final_beta=float(final_beta),
        steps=cfg.steps,
        train_size=n,
        rate_bits=d["rate_bits"],
        distortion_bits=d["distortion_bits"],
        distortion_mu_bits=d["distortion_mu_bits"],
        nelbo_bits=d["nelbo_bits"],
        mi_bits=d["mi_bits"],
        mi_stderr_bits=d["mi_stderr_bits"],
        marginal_kl_bits=d["marginal_kl_bits"],
        log_n_bits=d["log_n_bits"],
        active_units=d["active_units"],
        h_bits=h,
        factor_bits=_factor_bits(budget),
        marginal_sum_bits=float(marg),
        bound_slack_bits=d["rate_bits"] - (h - d["distortion_bits"]),
        eval_images=ev.images,
        distortion_samples=ev.samples,
        train_s=round(train_s, 1),
        eval_s=round(ev.seconds, 1),
        kl_per_dim_bits=tuple(d["kl_per_dim_bits"]),
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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=90)
    FigureCanvasAgg(fig)
    return fig


def _factor_bits(budget: Budget) -> float:
    # Sweeps train on dSprites, whose budget always carries the factor entropy.
    assert budget.factor_bits is not None
    return budget.factor_bits


def plot_sweep(points: Sequence[SweepPoint], budget: Budget, out_dir: Union[str, Path]) -> list[Path]:
    """``sweep_rd.png`` (the R-D plane with bounds, frontier and slopes) and ``sweep_split.png`` (R, I(X;Z)
    and
    KL(q(z)||p(z)) per run against H(X) and log2 N)."""
    out = Path(out_dir)
    h, fac = budget.bits, _factor_bits(budget)
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


__all__ = ["CSV_FIELDS", "SweepPoint", "SweepResult", "plot_sweep", "read_csv", "run_sweep", "write_csv"]
