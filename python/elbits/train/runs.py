"""A run's folder and its continuation: what a new run may replace, what a resumed run may change, and a
stop on Ctrl-C / SIGTERM that leaves a checkpoint."""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Optional

from ..errors import InputError
from .config import TrainConfig
from .decoders import default_kind

# The files a run writes in its out_dir; any of them marks the folder as holding a run.
RUN_FILES = ("metrics.jsonl", "checkpoint.pt", "final.json")

# Settings a resumed run must share with its checkpoint: the data, the batches' order, the model and its
# likelihood, the record grid and the controller, all of which the saved state was built on.
FIXED = (
    "seed",
    "batch_size",
    "z_dim",
    "npz",
    "train_size",
    "data_seed",
    "data",
    "images",
    "size",
    "preprocess",
    "controller",
    "log_every",
    "likelihood",
    "decoder_output",
    "mixture_components",
    "scale",
    "discretize",
)
# Applied from the resumed step on: the optimiser's settings, the run's length and a fixed controller's beta.
APPLIED = ("steps", "lr", "weight_decay", "beta")

# Controller state entries that are settings, and the TrainConfig field each comes from.
_CONTROLLER_SETTINGS = {
    "CapacityAnnealing": {"c_max_nats": "capacity_bits", "anneal_steps": "capacity_steps", "gamma": "gamma"},
    "GECO": {"target": "target_bits", "lr": "controller_lr"},
    "TargetRate": {"target_nats": "target_bits", "lr": "controller_lr"},
}
_DEFAULTS = TrainConfig().to_dict()


def holds_run(out: Path) -> list[str]:
    """The run files present in ``out``."""
    return [name for name in RUN_FILES if (out / name).exists()]


def claim_out_dir(out: Path, cfg: TrainConfig, resume: Optional[Path], main: bool) -> None:
    """Refuse to start over a run in ``out`` unless ``cfg.overwrite`` (then its files go) or it is the run
    being resumed."""
    found = holds_run(out)
    if not found:
        return
    if resume is not None:
        if resume.resolve() != (out / "checkpoint.pt").resolve():
            raise InputError(
                f"{out} holds another run ({', '.join(found)}); resuming {resume} there would mix "
                "the two: choose an empty out_dir"
            )
        return
    if not cfg.overwrite:
        raise InputError(
            f"{out} holds a run ({', '.join(found)}): continue it with resume (--resume), replace it "
            "with overwrite (--overwrite), or choose another out_dir (--out)"
        )
    if main:
        for name in (*RUN_FILES, "checkpoint.pt.tmp", "final.json.tmp", "metrics.jsonl.tmp"):
            (out / name).unlink(missing_ok=True)
        for events in (out / "tb").glob("events.out.tfevents.*"):
            events.unlink()


def _old(old: dict[str, Any], key: str) -> Any:
    if key == "decoder_output" and old.get(key) is None:  # checkpoints from before the setting
        return default_kind(old.get("likelihood", "bernoulli"), old.get("scale"))
    return old.get(key, _DEFAULTS[key])


def settle_resumed_config(cfg: TrainConfig, state: dict[str, Any], where: Path) -> TrainConfig:
    """``cfg`` as a resumed run uses it, or an :class:`InputError` naming each setting that differs from the
    checkpoint's and cannot be applied. ``capacity_steps`` left unset keeps the checkpoint's schedule."""
    old = state["config"]
    if not isinstance(old, dict):
        raise InputError(f"{where}: its config is a {type(old).__name__}; expected the TrainConfig dict")
    if cfg.controller == "capacity" and cfg.capacity_steps is None:
        cfg = dataclasses.replace(cfg, capacity_steps=_old(old, "capacity_steps") or _old(old, "steps"))
    bad = [f"{k} {_old(old, k)!r} -> {getattr(cfg, k)!r}" for k in FIXED if _old(old, k) != getattr(cfg, k)]
    if cfg.controller != "fixed" and _old(old, "beta") != cfg.beta:
        bad.append(
            f"beta {_old(old, 'beta')!r} -> {cfg.beta!r} (the {cfg.controller} controller's state holds beta)"
        )
    step = int(state["step"])
    if cfg.steps < step:
        bad.append(f"steps {cfg.steps} is before the checkpoint's step {step}")
    if bad:
        raise InputError(
            f"cannot resume {where}: " + "; ".join(bad) + ". Expected the checkpoint's settings "
            f"(only {', '.join(APPLIED[:-1])} and a fixed controller's beta may change)"
        )
    return cfg


def check_controller_settings(saved: Any, fresh: Any, where: Path) -> None:
    """An :class:`InputError` when the checkpoint's controller state has other settings than the controller
    this run's config builds (e.g. a rate target from another budget)."""
    if not isinstance(saved, dict):
        return  # load_state_dict says what is wrong with it
    new = fresh.state_dict()
    kind = new.get("type")
    bad = [
        f"{name} (controller {k} {saved.get(k)!r} -> {new[k]!r})"
        for k, name in _CONTROLLER_SETTINGS.get(str(kind), {}).items()
        if saved.get("type") == kind and k in saved and saved[k] != new[k]
    ]
    if bad:
        raise InputError(
            f"cannot resume {where}: the settings give another controller than the checkpoint's: "
            + "; ".join(bad)
            + "; expected the checkpoint's"
        )


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C or SIGTERM after a completed step, with a checkpoint at that step."""

    def __init__(self, step: int, checkpoint: Path, signal_name: str) -> None:
        super().__init__(
            f"{signal_name}: stopped after step {step}; {checkpoint} holds it: continue with "
            "resume (--resume)"
        )
        self.step, self.checkpoint, self.signal_name = step, checkpoint, signal_name


class StopRequest:
    """While entered (in the main thread, for signals still on their default handlers): the first SIGINT or
    SIGTERM sets ``requested`` (the loop stops after the step under way, with a checkpoint); a second one
    raises ``KeyboardInterrupt`` at once."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested: Optional[str] = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                # A handler the application installed itself stays in charge.
                if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None:
            self._restore()
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        print(
            f"\n{self.requested}: stopping after this step with a checkpoint (again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def _restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def __exit__(self, *exc: Any) -> None:
        self._restore()
