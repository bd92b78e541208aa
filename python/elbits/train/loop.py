"""The training loop: ELBOLoss (fused op) + a beta controller + RateDistortionMeter + AdamW, resumable,
DDP-ready."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from tqdm import tqdm

from .. import calibrate
from ..errors import InputError
from ..loss import ELBOLoss
from ..meter import RateDistortionMeter
from ..models import BurgessVAE, ColourVAE
from ..models.burgess import MAX_CHANNELS
from ..units import NATS_PER_BIT
from . import distributed as D
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import Budget, IndexStream, check_images, data_budget, fetch, step_seed, training_set
from .decoders import Head, resolve_head, split_output
from .logging import JsonlLogger, TensorBoardLogger, read_jsonl
from .rd_pass import rd_pass, sampled_z
from .runs import (
    StopRequest,
    TrainingInterrupted,
    check_controller_settings,
    claim_out_dir,
    settle_resumed_config,
)


@dataclass
class TrainResult:
    """What :func:`train` leaves: the model, criterion, meters and where the files are.

    ``final``: the meter's scalars of one pass over the training set after the last step (eval mode, no
    update), the figures to quote; ``None`` with ``eval_at_end=False``. ``eval_z`` says how z was drawn in
    it (:func:`sampled_z`). ``history``: the metric records (``metrics.jsonl``, on every rank).
    ``seconds``: wall time of the steps this call ran. ``head``: the likelihood and what the decoder emits.
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
    head: Optional[Head] = None
    eval_z: Optional[str] = None


def build_controller(cfg: TrainConfig, budget: Any) -> calibrate.Controller:
    """The controller ``cfg.controller`` names, from the config's settings. ``budget``: a :class:`Budget` (or
    its H in bits), the default rate target of ``target-rate``; an :class:`InputError` when that is needed
    and unknown."""
    if cfg.controller == "fixed":
        return calibrate.FixedBeta(cfg.beta)
    if cfg.controller == "capacity":
        return calibrate.CapacityAnnealing(
            c_max_bits=cfg.capacity_bits, steps=cfg.capacity_steps or cfg.steps, gamma=cfg.gamma
        )
    if cfg.controller == "geco":
        return calibrate.GECO(target_bits=cfg.target_bits, lr=cfg.controller_lr)
    if cfg.target_bits is None and isinstance(budget, Budget):
        budget = budget.bits  # an InputError naming the data when H(X) is unknown
    return calibrate.TargetRate(
        target_bits=cfg.target_bits if cfg.target_bits is not None else budget,
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

    - ``model``: an ``nn.Module`` whose ``forward(x)`` returns ``(out, mu, logvar)`` (or PyTorch-VAE's
      ``[out, x, mu, logvar]``), ``out`` in ``cfg.likelihood``'s layout of the declared ``decoder_output``
      (:mod:`elbits.train.decoders`); with ``encode``/``decode`` the final pass samples z itself. Default:
      :class:`elbits.models.BurgessVAE` (``z_dim``, output channels for the likelihood), seeded by ``seed``.
    - ``dataset``: items ``(image, ...)`` or images ``[C, H, W]`` in [0, 1]; default dSprites per ``cfg``.
    - ``budget``: the data's entropy figures; default computed from the training images (:func:`data_budget`).

    Under ``torchrun`` (``WORLD_SIZE > 1``) or an initialised process group, each process trains on its
    share of every epoch with DDP, the controller steps on global batch figures and the meter's scalars
    are global. Every ``log_every`` steps one record goes to ``out_dir/metrics.jsonl`` (and TensorBoard);
    every ``checkpoint_every`` steps and at the end, ``out_dir/checkpoint.pt``. With ``resume``, the run
    continues from the checkpoint and gives the same parameters and records as an uninterrupted run. An
    ``out_dir`` holding a run is refused unless resumed or ``overwrite``. In a single process, Ctrl-C or
    SIGTERM stops after the step under way with a checkpoint and raises :class:`TrainingInterrupted`.
    """
    d = D.setup(cfg.device)
    try:
        return _train(cfg, d, model, dataset, budget)
    finally:
        D.cleanup(d)


def _default_model(cfg: TrainConfig, head: Head, x: torch.Tensor) -> nn.Module:
    if cfg.colour:  # the colour VAE, its decoder sized for the likelihood's layout
        side = x.shape[-1]
        if x.shape[-2] != side or side not in (32, 64):
            raise InputError(
                f"the default colour model (ColourVAE) reads [C, 32, 32] or [C, 64, 64] images; these are "
                f"{list(x.shape[1:])}: pass a model of your own (train(cfg, model=...))"
            )
        torch.manual_seed(cfg.seed)
        return ColourVAE(cfg.z_dim, x.shape[1], side, cfg.likelihood, cfg.mixture_components)
    if tuple(x.shape[2:]) != (64, 64) or not 1 <= x.shape[1] <= MAX_CHANNELS:
        raise InputError(
            f"the default model (BurgessVAE) reads [C, 64, 64] images, C <= {MAX_CHANNELS}; these are "
            f"{list(x.shape[1:])}: pass a model of your own (train(cfg, model=...))"
        )
    torch.manual_seed(cfg.seed)
    return BurgessVAE(z_dim=cfg.z_dim, channels=x.shape[1], out_channels=head.out_channels)


def _load_resumed(
    where: Path, state: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer, crit: ELBOLoss
) -> None:
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{where}: its model weights do not fit {type(model).__name__} ({first})") from None
    try:
        opt.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{where}: its optimizer state does not fit this model's parameters ({e})") from None
    crit.load_state_dict(state["criterion"])


def _train(
    cfg: TrainConfig, d: D.Dist, model: Optional[nn.Module], dataset: Any, budget: Optional[Budget]
) -> TrainResult:
    out = Path(cfg.out_dir)
    resume = _resume_path(cfg)
    claim_out_dir(out, cfg, resume, d.main)
    state = load_checkpoint(resume) if resume is not None else None
    if dataset is None:
        dataset = training_set(cfg)
    if len(dataset) < 1:
        raise InputError("the dataset is empty; expected at least one image")
    first = fetch(dataset, [0])
    check_images(first, "dataset[0]")
    head = resolve_head(
        cfg.likelihood,
        cfg.decoder_output,
        model,
        first.shape[1],
        components=cfg.mixture_components,
        scale=cfg.scale,
        discretize=cfg.discretize,
    )
    # The declared (or default) decoder output is a setting of the run: saved, and compared on resume.
    cfg = dataclasses.replace(cfg, decoder_output=head.kind)
    if state is not None:
        assert resume is not None
        cfg = settle_resumed_config(cfg, state, resume)
    if budget is None:
        budget = data_budget(dataset)
    if model is None:
        model = _default_model(cfg, head, first)
    model = model.to(d.device)

    ctrl: Any = build_controller(cfg, budget)
    fresh_ctrl = ctrl
    if d.world > 1:
        ctrl = D.GlobalController(ctrl)
    crit = ELBOLoss(cfg.likelihood, controller=ctrl, **head.loss_settings())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # The bound H - D <= R holds where D is a code length of the data (a discrete likelihood on its grid).
    bound_bits = budget.known_bits if head.code_length(budget.levels) else None
    meter = RateDistortionMeter(budget=None if bound_bits is None else bound_bits * NATS_PER_BIT)
    stream = IndexStream(dataset, cfg.batch_size, cfg.seed, d.rank, d.world)

    step, samples_seen, loss_window = 0, 0, [0.0, 0.0]
    ckpt_path = out / "checkpoint.pt"
    if state is not None:
        assert resume is not None
        check_controller_settings(state["criterion"].get("controller_state._extra_state"), fresh_ctrl, resume)
        _load_resumed(resume, state, model, opt, crit)
        # Applied from here on, as the saved config will say.
        for group in opt.param_groups:
            group["lr"], group["weight_decay"] = cfg.lr, cfg.weight_decay
        if cfg.controller == "fixed":
            fresh_ctrl.beta_ = cfg.beta
        step, samples_seen = int(state["step"]), int(state["samples_seen"])
        if int(state["world_size"]) == d.world:
            meter.load_state_dict(state["meters"][d.rank])
            loss_window = [float(v) for v in state["loss_windows"][d.rank]]
        else:
            warnings.warn(
                f"resuming on {d.world} processes from a checkpoint of {state['world_size']}: "
                "the running meter window restarts (parameters and controller are restored)",
                stacklevel=2,
            )
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
    if d.world > 1:
        device_ids = [d.device.index] if d.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    # A finished run that is resumed for its final pass keeps its records as they are.
    jsonl = (
        JsonlLogger(out / "metrics.jsonl", truncate_after=step, fresh=state is None, log_every=cfg.log_every)
        if d.main and step < cfg.steps
        else None
    )
    tb = TensorBoardLogger(out / "tb", enabled=cfg.tensorboard and d.main and step < cfg.steps)
    bar = None
    if d.main and cfg.progress and step < cfg.steps:
        bar = tqdm(total=cfg.steps, initial=step, unit="step", desc="train", dynamic_ncols=True)

    def log_record(wall: float) -> dict[str, Any]:
        scalars = meter.scalars()  # global under DDP: every rank calls it
        n_loss, s_loss = loss_window
        if d.world > 1:
            n_loss, s_loss = D.all_reduce_sum([n_loss, s_loss])
        rec: dict[str, Any] = {
            "step": step,
            "epoch": stream.epoch_of(max(step - 1, 0)),
            "samples_seen": samples_seen,
            "beta": float(crit.beta),
            "lr": float(opt.param_groups[0]["lr"]),
            "loss_nats": s_loss / n_loss if n_loss else float("nan"),
        }
        rec.update(_controller_scalars(ctrl))
        rec.update(scalars)
        rec["wall_s"] = wall
        return rec

    def emit(rec: dict[str, Any]) -> None:
        if jsonl is not None:
            jsonl.log(rec)
        tb.log(rec, step)

    def save() -> None:
        _checkpoint(ckpt_path, cfg, d, model, opt, crit, meter, loss_window, step, samples_seen)

    model.train()
    crit.train()
    t0 = time.perf_counter()
    checked = False
    try:
        with StopRequest(enabled=d.world == 1) as stop:
            while step < cfg.steps:
                x = fetch(dataset, stream.batch(step)).to(d.device, non_blocking=True)
                torch.manual_seed(step_seed(cfg.seed, step, d.rank))
                result, mu, logvar = split_output(model(x), x)
                if not checked:  # the first batch this call trains on: the layout, once
                    head.check(result, x)
                    checked = True
                params, per_batch = head.arguments(result)
                loss = crit(params, head.target(x), mu, logvar, **per_batch)
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
                        d_text = (  # colour models are compared in bits/dim
                            f"D={s['distortion_bits_per_dim']:.3f} bits/dim"
                            if cfg.colour
                            else f"D={s['distortion_bits']:.1f} bits"
                        )
                        bar.set_postfix_str(
                            f"R={s['rate_bits']:.2f} bits {d_text} beta={crit.beta:.3g}", refresh=False
                        )
                on_grid = step % cfg.log_every == 0
                if on_grid:
                    emit(log_record(time.perf_counter() - t0))
                    meter.reset()
                    loss_window = [0.0, 0.0]
                elif step == cfg.steps:
                    # The last, partial window, written before the checkpoint that holds it unlogged: a run
                    # resumed for more steps drops this record and logs the full window at the next grid
                    # step, as an uninterrupted run does.
                    emit({**log_record(time.perf_counter() - t0), "partial": True})
                if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps:
                    save()
                elif stop.requested:
                    save()
                if stop.requested and step < cfg.steps:
                    raise TrainingInterrupted(step, ckpt_path, stop.requested)
    finally:
        if bar is not None:
            bar.close()
        if jsonl is not None:
            jsonl.close()
        tb.close()
    seconds = time.perf_counter() - t0

    final = final_meter = None
    eval_z = None
    if cfg.eval_at_end:
        final_meter = rd_pass(
            model,
            dataset,
            head=head,
            seed=cfg.seed,
            budget_bits=bound_bits,
            device=d.device,
            rank=d.rank,
            world=d.world,
            limit=cfg.eval_limit,
        ).meter
        final = final_meter.scalars()
        final["beta"] = float(crit.beta)
        eval_z = "sampled from q(z|x)" if sampled_z(model) else "as the model's eval-mode forward draws it"
        if d.main:
            _write_json(
                out / "final.json",
                {
                    "step": step,
                    **final,
                    "eval_z": eval_z,
                    "likelihood": cfg.likelihood,
                    "decoder_output": head.kind,
                    "budget": budget.to_dict(),
                },
            )
    if d.world > 1:
        torch.distributed.barrier()
    history = read_jsonl(out / "metrics.jsonl") if (out / "metrics.jsonl").exists() else []
    return TrainResult(
        _unwrap(model),
        crit,
        meter,
        final,
        history,
        budget,
        step,
        out,
        seconds,
        d.rank,
        d.world,
        dataset,
        final_meter,
        head,
        eval_z,
    )


def _write_json(path: Path, obj: Any) -> None:
    """``path`` replaced atomically: a reader sees the old file or the whole new one, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(json.dumps(obj, indent=1) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _checkpoint(
    path: Path,
    cfg: TrainConfig,
    d: D.Dist,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    crit: ELBOLoss,
    meter: RateDistortionMeter,
    loss_window: list[float],
    step: int,
    samples_seen: int,
) -> None:
    meters = D.gather_objects(meter.state_dict(), d.world)
    windows = D.gather_objects(list(loss_window), d.world)
    if d.main:
        save_checkpoint(
            path,
            {
                "step": step,
                "samples_seen": samples_seen,
                "world_size": d.world,
                "config": cfg.to_dict(),
                "model": _unwrap(model).state_dict(),
                "optimizer": opt.state_dict(),
                "criterion": crit.state_dict(),
                "meters": meters,
                "loss_windows": windows,
            },
        )
    if d.world > 1:
        torch.distributed.barrier()
