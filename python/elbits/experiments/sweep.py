"""A rate-distortion sweep: train one VAE per beta (or per rate target), measure each one's (R, D) and the
ELBO-surgery split R = I(X;Z) + KL(q(z) || p(z)); :mod:`elbits.report.sweep` writes and draws them against
the data's bounds.

Each run is :func:`elbits.train.train` on the same training set; each trained model is then measured by
:func:`elbits.experiments.evaluate.evaluate_model` on that training set (all of it, or ``eval_images``
evenly spaced images of a larger one): D averaged over ``samples`` draws z ~ q(z|x), I(X;Z) for x uniform
over the evaluated images. The bounds come from the training set's entropies
(:func:`elbits.train.data_budget`, computed with :mod:`elbits.entropy`): at rate 0 a decoder can do no
better than D = sum_i H(X_i); no code does better than D + R >= H(X). The frontier is the lower convex hull
of the measured points (:func:`elbits.calibrate.empirical_frontier`); its segment slopes -dD/dR are the
measured exchange rate.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .. import calibrate
from ..models.checkpoints import load_model
from ..report.sweep import CSV_FIELDS, factor_bits, plot_sweep, write_csv
from ..train import Budget, TrainConfig, build_dataset, data_budget, fetch, train
from .evaluate import Evaluation, evaluate_model


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

    ``init``: start every run from this checkpoint (see :func:`elbits.models.checkpoints.load_model`, e.g. the
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
        model = None if init is None else load_model(init)[0].train()
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
        factor_bits=factor_bits(budget),
        marginal_sum_bits=float(marg),
        bound_slack_bits=d["rate_bits"] - (h - d["distortion_bits"]),
        eval_images=ev.images,
        distortion_samples=ev.samples,
        train_s=round(train_s, 1),
        eval_s=round(ev.seconds, 1),
        kl_per_dim_bits=tuple(d["kl_per_dim_bits"]),
    )


__all__ = ["SweepPoint", "SweepResult", "run_sweep"]
