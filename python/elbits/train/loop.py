"""The training loop: ELBOLoss (fused op) + a beta controller + RateDistortionMeter + AdamW, resumable, DDP-ready."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from .. import calibrate
from ..api import elbo_terms
from ..loss import ELBOLoss
from ..meter import RateDistortionMeter
from ..units import NATS_PER_BIT
from . import distributed as D
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import Budget, IndexStream, build_dataset, data_budget, fetch, step_seed
from .logging import JsonlLogger, TensorBoardLogger, read_jsonl

# Settings a resumed run must share with its checkpoint (the others, e.g. steps, may change).
_RESUME_KEYS = ("seed", "batch_size", "z_dim", "npz", "train_size", "data_seed", "controller", "log_every")


@dataclass
class TrainResult:
    """What :func:`train` leaves: the model, criterion, meters and where the files are.

    ``final``: the meter's scalars of one pass over the training set after the last step (z sampled, no
    update), the figures to quote; ``None`` with ``eval_at_end=False``. ``history``: the metric records
    (``metrics.jsonl``, on every rank). ``seconds``: wall time of the steps this call ran.
    """

    model: nn.Module
    criterion: ELBOLoss
    meter: RateDistortionMeter
    final: Optional[dict[str, float]]
    history: list[dict[str, Any]]
    budget: Budget
    step: int
    out_dir: Path
    seconds: float
    rank: int = 0
    world: int = 1
    dataset: Any = field(default=None, repr=False)
    final_meter: Optional[RateDistortionMeter] = field(default=None, repr=False)


def build_controller(cfg: TrainConfig, budget_bits: float) -> calibrate.Controller:
    """The controller ``cfg.controller`` names, from the config's settings."""
    if cfg.controller == "fixed":
        return calibrate.FixedBeta(cfg.beta)
    if cfg.controller == "capacity":
        return calibrate.CapacityAnnealing(
            c_max_bits=cfg.capacity_bits, steps=cfg.capacity_steps or cfg.steps, gamma=cfg.gamma
        )
    if cfg.controller == "geco":
        return calibrate.GECO(target_bits=cfg.target_bits, lr=cfg.controller_lr)
    return calibrate.TargetRate(
        target_bits=cfg.target_bits if cfg.target_bits is not None else budget_bits,
        lr=cfg.controller_lr,
        beta_init=cfg.beta,
    )


def _controller_scalars(ctrl: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    if hasattr(ctrl, "capacity_bits"):
        out["capacity_bits"] = float(ctrl.capacity_bits)
    if getattr(ctrl, "lambda_", None) is not None:
        out["geco_lambda"] = float(ctrl.lambda_)
    if hasattr(ctrl, "target_bits") and not callable(ctrl.target_bits):
        out["target_rate_bits"] = float(ctrl.target_bits)
    return out


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Any,
    *,
    budget_bits: Optional[float] = None,
    batch_size: int = 256,
    seed: int = 0,
    device: Optional[torch.device] = None,
    rank: int = 0,
    world: int = 1,
    limit: Optional[int] = None,
) -> RateDistortionMeter:
    """Rate and distortion of ``model`` over every image of ``dataset`` (rank r takes positions r, r+W, ...),
    or over ``limit`` evenly spaced ones when the set is larger (an estimate of the same means).

    D is the ELBO's: the reconstruction of a z *sampled* from q(z|x) (seeded by ``seed``), so D + R is a
    code length and H - D <= R holds. A model with ``encode``/``decode`` is run in eval mode with the noise
    drawn here; any other model is called in training mode (its own sampling) under ``no_grad``.
    Under a process group the returned meter's scalars are global (call them on every rank).
    """
    base: Any = _unwrap(model)
    was_training = base.training
    if device is None:
        device = next(base.parameters()).device
    meter = RateDistortionMeter(budget=None if budget_bits is None else budget_bits * NATS_PER_BIT)
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + rank)
    n = len(dataset)
    every = np.arange(n) if limit is None or n <= limit else np.linspace(0, n - 1, limit).round().astype(np.int64)
    positions = every[rank::world]
    split = hasattr(base, "encode") and hasattr(base, "decode")
    base.train(not split)
    try:
        for start in range(0, len(positions), batch_size):
            x = fetch(dataset, positions[start : start + batch_size]).to(device)
            if split:
                mu, logvar = base.encode(x)
                eps = torch.randn(mu.shape, generator=g, dtype=mu.dtype).to(device)
                logits = base.decode(mu + eps * torch.exp(0.5 * logvar))
            else:
                logits, mu, logvar = base(x)
            meter.update(elbo_terms(logits, x, mu, logvar))
    finally:
        base.train(was_training)
    return meter


def _resume_path(cfg: TrainConfig) -> Optional[Path]:
    if not cfg.resume:
        return None
    p = Path(cfg.resume)
    if cfg.resume == "auto" or p.is_dir():
        p = (Path(cfg.out_dir) if cfg.resume == "auto" else p) / "checkpoint.pt"
    return p


def train(
    cfg: TrainConfig,
    model: Optional[nn.Module] = None,
    dataset: Any = None,
    budget: Optional[Budget] = None,
) -> TrainResult:
    """Train a VAE on dSprites (or ``dataset``) with :class:`ELBOLoss` and the configured controller.

    - ``model``: any ``nn.Module`` whose ``forward(x)`` returns ``(logits, mu, logvar)``; default
      :class:`elbits.models.BurgessVAE` (``z_dim``), initialised from ``seed``.
    - ``dataset``: items ``(image, ...)`` or images ``[C, H, W]`` in [0, 1]; default dSprites per ``cfg``.
    - ``budget``: the data's entropy figures; default computed from the training set (:func:`data_budget`).

    Under ``torchrun`` (``WORLD_SIZE > 1``) or an initialised process group, each process trains on its
    share of every epoch with DDP, the controller steps on global batch figures and the meter's scalars
    are global. Every ``log_every`` steps one record goes to ``out_dir/metrics.jsonl`` (and TensorBoard);
    every ``checkpoint_every`` steps and at the end, ``out_dir/checkpoint.pt``. With ``resume``, the run
    continues from the checkpoint and gives the same parameters and records as an uninterrupted run.
    """
    d = D.setup(cfg.device)
    try:
        return _train(cfg, d, model, dataset, budget)
    finally:
        D.cleanup(d)


def _train(cfg: TrainConfig, d: D.Dist, model: Optional[nn.Module], dataset: Any,
           budget: Optional[Budget]) -> TrainResult:
    out = Path(cfg.out_dir)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
    if dataset is None:
        dataset = build_dataset(cfg.npz, cfg.train_size, cfg.data_seed)
    if budget is None:
        budget = data_budget(dataset)
    if model is None:
        from ..models import BurgessVAE

        torch.manual_seed(cfg.seed)
        model = BurgessVAE(z_dim=cfg.z_dim)
    model = model.to(d.device)

    ctrl: Any = build_controller(cfg, budget.bits)
    if d.world > 1:
        ctrl = D.GlobalController(ctrl)
    crit = ELBOLoss(controller=ctrl)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    meter = RateDistortionMeter(budget=budget.bits * NATS_PER_BIT)
    stream = IndexStream(dataset, cfg.batch_size, cfg.seed, d.rank, d.world)

    step, samples_seen, loss_window = 0, 0, [0.0, 0.0]
    ckpt_path = out / "checkpoint.pt"
    resume = _resume_path(cfg)
    if resume is not None:
        state = load_checkpoint(resume)
        old = state["config"]
        bad = [k for k in _RESUME_KEYS if old.get(k) != getattr(cfg, k)]
        if bad:
            raise ValueError(f"cannot resume {resume}: settings differ from the checkpoint's: "
                             + ", ".join(f"{k} {old.get(k)!r} -> {getattr(cfg, k)!r}" for k in bad))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        crit.load_state_dict(state["criterion"])
        step, samples_seen = int(state["step"]), int(state["samples_seen"])
        if int(state["world_size"]) == d.world:
            meter.load_state_dict(state["meters"][d.rank])
            loss_window = [float(v) for v in state["loss_windows"][d.rank]]
        else:
            warnings.warn(f"resuming on {d.world} processes from a checkpoint of {state['world_size']}: "
                          "the running meter window restarts (parameters and controller are restored)",
                          stacklevel=2)
    if d.world > 1:
        device_ids = [d.device.index] if d.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    jsonl = (JsonlLogger(out / "metrics.jsonl", truncate_after=step, fresh=resume is None, log_every=cfg.log_every)
             if d.main else None)
    tb = TensorBoardLogger(out / "tb", enabled=cfg.tensorboard and d.main)
    bar = None
    if d.main and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, unit="step", desc="train", dynamic_ncols=True)

    def log_record(wall: float) -> dict[str, Any]:
        scalars = meter.scalars()  # global under DDP: every rank calls it
        n_loss, s_loss = loss_window
        if d.world > 1:
            n_loss, s_loss = D.all_reduce_sum([n_loss, s_loss])
        rec: dict[str, Any] = {"step": step, "epoch": stream.epoch_of(max(step - 1, 0)),
                               "samples_seen": samples_seen, "beta": float(crit.beta),
                               "lr": float(opt.param_groups[0]["lr"]),
                               "loss_nats": s_loss / n_loss if n_loss else float("nan")}
        rec.update(_controller_scalars(ctrl))
        rec.update(scalars)
        rec["wall_s"] = wall
        return rec

    def emit(rec: dict[str, Any]) -> None:
        if jsonl is not None:
            jsonl.log(rec)
        tb.log(rec, step)

    model.train()
    crit.train()
    t0 = time.perf_counter()
    while step < cfg.steps:
        x = fetch(dataset, stream.batch(step)).to(d.device, non_blocking=True)
        torch.manual_seed(step_seed(cfg.seed, step, d.rank))
        logits, mu, logvar = model(x)
        loss = crit(logits, x, mu, logvar)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        terms = crit.last
        assert terms is not None
        meter.update(terms)
        loss_window[0] += float(x.shape[0])
        loss_window[1] += float(loss.detach()) * x.shape[0]
        samples_seen += x.shape[0] * d.world
        step += 1
        if bar is not None:
            bar.update(1)
            if step % 10 == 0 or step == cfg.steps:
                s = meter.scalars(reduce=False)
                bar.set_postfix_str(f"R={s['rate_bits']:.2f} bits D={s['distortion_bits']:.1f} bits "
                                    f"beta={crit.beta:.3g}", refresh=False)
        on_grid = step % cfg.log_every == 0
        if on_grid:
            emit(log_record(time.perf_counter() - t0))
            meter.reset()
            loss_window = [0.0, 0.0]
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps:
            _checkpoint(ckpt_path, cfg, d, model, opt, crit, meter, loss_window, step, samples_seen)
        if step == cfg.steps and not on_grid:
            # The last, partial window. The checkpoint above holds it unlogged: a resumed run drops this
            # record and logs the full window at the next grid step, as an uninterrupted run does.
            emit({**log_record(time.perf_counter() - t0), "partial": True})
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    if jsonl is not None:
        jsonl.close()
    tb.close()

    final = final_meter = None
    if cfg.eval_at_end:
        final_meter = evaluate(model, dataset, budget_bits=budget.bits, seed=cfg.seed, device=d.device,
                               rank=d.rank, world=d.world, limit=cfg.eval_limit)
        final = final_meter.scalars()
        final["beta"] = float(crit.beta)
        if d.main:
            (out / "final.json").write_text(json.dumps({"step": step, **final, "budget": budget.to_dict()},
                                                       indent=1) + "\n")
    if d.world > 1:
        torch.distributed.barrier()
    history = read_jsonl(out / "metrics.jsonl") if (out / "metrics.jsonl").exists() else []
    return TrainResult(_unwrap(model), crit, meter, final, history, budget, step, out, seconds,
                       d.rank, d.world, dataset, final_meter)


def _checkpoint(path: Path, cfg: TrainConfig, d: D.Dist, model: nn.Module, opt: torch.optim.Optimizer,
                crit: ELBOLoss, meter: RateDistortionMeter, loss_window: list[float], step: int,
                samples_seen: int) -> None:
    meters = D.gather_objects(meter.state_dict(), d.world)
    windows = D.gather_objects(list(loss_window), d.world)
    if d.main:
        save_checkpoint(path, {
            "step": step, "samples_seen": samples_seen, "world_size": d.world, "config": cfg.to_dict(),
            "model": _unwrap(model).state_dict(), "optimizer": opt.state_dict(),
            "criterion": crit.state_dict(), "meters": meters, "loss_windows": windows,
        })
    if d.world > 1:
        torch.distributed.barrier()
