"""Hostile runs and controllers: changed settings on resume, an out_dir holding a run, tampered controller
state, interrupted and killed runs, bad data, undeclared or misdeclared decoders, bad settings."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch
from tiny_runs import TinyVAE, binary_images, tiny_config, tiny_model, without_wall

from elbits.calibrate import GECO, CapacityAnnealing, FixedBeta, TargetRate
from elbits.errors import InputError
from elbits.loss import ELBOLoss
from elbits.train import (
    Budget,
    TrainConfig,
    TrainingInterrupted,
    data_budget,
    load_checkpoint,
    read_jsonl,
    save_checkpoint,
    train,
)

DATA = binary_images(64)


def _run(out, steps=8, model_seed=0, data=DATA, budget=None, **kw):
    return train(
        tiny_config(out, steps=steps, **kw), model=tiny_model(model_seed), dataset=data, budget=budget
    )


def _same_run(a, b) -> None:
    """Parameters, controller state and every metric record equal."""
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert a.criterion.state_dict() == b.criterion.state_dict()
    assert without_wall(read_jsonl(a.out_dir / "metrics.jsonl")) == without_wall(
        read_jsonl(b.out_dir / "metrics.jsonl")
    )


# ---- resume with changed settings: applied or refused, never both ---------------------------------------

REFUSED = [
    ("seed", 3, {}),
    ("batch_size", 4, {}),
    ("log_every", 4, {}),
    ("likelihood", "continuous_bernoulli", {}),
    ("controller_lr", 0.5, {}),
    ("target_bits", 9.0, {}),
    ("beta", 2.0, {}),
    ("capacity_bits", 9.0, {"controller": "capacity", "target_bits": None}),
    ("gamma", 5.0, {"controller": "capacity", "target_bits": None}),
    ("capacity_steps", 3, {"controller": "capacity", "target_bits": None}),
]


@pytest.mark.parametrize("name,value,base", REFUSED, ids=[r[0] for r in REFUSED])
def test_resume_refuses_a_changed_setting(tmp_path, name, value, base):
    _run(tmp_path, steps=4, **base)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(InputError, match=rf"cannot resume .*\b{name}\b"):
        _run(tmp_path, steps=8, resume="auto", **{**base, name: value})
    assert (tmp_path / "checkpoint.pt").read_bytes() == before  # nothing half-applied


@pytest.mark.parametrize("name,value", [("lr", 0.01), ("weight_decay", 0.1), ("beta", 3.0)])
def test_resume_applies_a_changed_optimiser_setting_or_fixed_beta(tmp_path, name, value):
    _run(tmp_path, steps=4, controller="fixed", target_bits=None)
    r = _run(tmp_path, steps=6, resume="auto", controller="fixed", target_bits=None, **{name: value})
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["config"][name] == value  # what the checkpoint claims ...
    if name == "beta":  # ... is what ran
        assert r.criterion.beta == value and [h["beta"] for h in r.history] == [1.0, 1.0, value]
    else:
        assert ck["optimizer"]["param_groups"][0][name] == value
    assert [h["lr"] for h in r.history][-1] == (value if name == "lr" else 1e-3)


def test_resume_refuses_steps_before_the_checkpoint(tmp_path):
    _run(tmp_path, steps=6)
    with pytest.raises(InputError, match="steps 4 is before the checkpoint's step 6"):
        _run(tmp_path, steps=4, resume="auto")


def test_resume_refuses_a_controller_built_on_another_budget(tmp_path):
    # target-rate aims at H(X) by default: resuming on other images would aim elsewhere than the state says.
    _run(tmp_path, steps=4, target_bits=None)
    with pytest.raises(InputError, match="target_bits"):
        _run(tmp_path, steps=8, target_bits=None, resume="auto", data=binary_images(32, seed=5))


def test_resume_refuses_weights_of_another_model(tmp_path):
    _run(tmp_path, steps=2)
    with pytest.raises(InputError, match="model weights do not fit TinyVAE"):
        train(tiny_config(tmp_path, steps=4, resume="auto"), model=TinyVAE(z=3), dataset=DATA)


# ---- an out_dir that holds a run -------------------------------------------------------------------------


def test_out_dir_with_a_run_is_refused_and_left_as_it_was(tmp_path):
    _run(tmp_path, steps=4)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(InputError, match="holds a run .*--resume.*--overwrite"):
        _run(tmp_path, steps=4, model_seed=1)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == files


def test_overwrite_replaces_the_run(tmp_path):
    _run(tmp_path, steps=8)
    r = _run(tmp_path, steps=4, overwrite=True)
    assert [h["step"] for h in read_jsonl(tmp_path / "metrics.jsonl")] == [2, 4] and r.step == 4


def test_resume_from_another_runs_checkpoint_into_a_run_is_refused(tmp_path):
    _run(tmp_path / "a", steps=2)
    _run(tmp_path / "b", steps=2)
    with pytest.raises(InputError, match="holds another run"):
        _run(tmp_path / "b", steps=4, resume=str(tmp_path / "a"))


def test_resume_and_overwrite_together_are_refused(tmp_path):
    with pytest.raises(InputError, match="give one of them"):
        tiny_config(tmp_path, resume="auto", overwrite=True)


# ---- controller state ------------------------------------------------------------------------------------

CONTROLLERS = {
    "FixedBeta": lambda: FixedBeta(2.0),
    "CapacityAnnealing": lambda: CapacityAnnealing(5.0, steps=10, gamma=10.0),
    "GECO": lambda: GECO(target_bits=30.0, lr=0.1),
    "TargetRate": lambda: TargetRate(5.0, lr=0.1),
}
BAD_VALUES = [math.nan, math.inf, "1.0", None, True, -1.0]
FIELDS = [(name, field) for name, make in CONTROLLERS.items() for field in make()._state]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=repr)
@pytest.mark.parametrize("name,field", FIELDS, ids=[f"{n}.{f}" for n, f in FIELDS])
def test_controller_state_with_a_bad_field_is_refused(name, field, bad):
    ctrl = CONTROLLERS[name]()
    ctrl.step({"rate_bits": 3.0, "distortion_bits": 40.0})
    state = ctrl.state_dict()
    fresh = CONTROLLERS[name]()
    before = fresh.state_dict()
    # Valid values among them: a running figure not measured yet (None) or of either sign, a flag's True.
    if (
        field in ("last_rate_nats", "c_ema", "rate_ema")
        and (bad is None or bad == -1.0)
        or field == "per_dim"
        and bad is True
    ):
        return
    with pytest.raises(InputError, match=rf"{name} state.*{field}"):
        fresh.load_state_dict({**state, field: bad})
    assert fresh.state_dict() == before  # unchanged


@pytest.mark.parametrize("change", ["missing", "unknown", "type", "not a dict", "limits"])
def test_controller_state_of_the_wrong_shape_is_refused(change):
    state = TargetRate(5.0).state_dict()
    bad = {
        "missing": {k: v for k, v in state.items() if k != "rate_ema"},
        "unknown": {**state, "extra": 1.0},
        "type": {**state, "type": "GECO"},
        "not a dict": [1.0, 2.0],
        "limits": {**state, "beta_": 10.0, "beta_max": 5.0},
    }[change]
    with pytest.raises(InputError):
        TargetRate(5.0).load_state_dict(bad)


def test_criterion_with_a_nan_beta_in_its_controller_state_is_refused():
    crit = ELBOLoss(controller=FixedBeta(1.0))
    state = crit.state_dict()
    state["controller_state._extra_state"] = {**state["controller_state._extra_state"], "beta_": math.nan}
    with pytest.raises(InputError, match="beta_"):
        ELBOLoss(controller=FixedBeta(1.0)).load_state_dict(state)


def test_resume_of_a_checkpoint_whose_controller_state_was_tampered_with_is_refused(tmp_path):
    _run(tmp_path, steps=2)
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    ck["criterion"]["controller_state._extra_state"]["beta_"] = "lots"
    save_checkpoint(tmp_path / "checkpoint.pt", {k: v for k, v in ck.items() if k != "format"})
    with pytest.raises(InputError, match="TargetRate state beta_ must be a number"):
        _run(tmp_path, steps=4, resume="auto")


# ---- interrupted and killed runs -------------------------------------------------------------------------


class _Faulty(list):
    """DATA, whose reads fail (or send a signal) at one call of the training loop."""

    def __init__(self, data, at: int, action) -> None:
        super().__init__(data)
        self.calls, self.at, self.action = 0, at, action

    def __getitem__(self, i):
        self.calls += 1
        if self.calls == self.at:
            self.action()
        return super().__getitem__(i)


def _crash() -> None:
    raise RuntimeError("disk gone")


def test_crashed_run_resumed_gives_the_uninterrupted_records(tmp_path):
    straight = _run(tmp_path / "a", steps=8)
    # With the budget given, the first read is the layout check, then 8 a step: fail in the sixth step,
    # after the checkpoint of step 3 and the record of step 4.
    with pytest.raises(RuntimeError, match="disk gone"):
        _run(
            tmp_path / "b",
            steps=8,
            checkpoint_every=3,
            data=_Faulty(DATA, 1 + 8 * 5 + 3, _crash),
            budget=data_budget(DATA),
        )
    assert [r["step"] for r in read_jsonl(tmp_path / "b" / "metrics.jsonl")] == [2, 4]
    _same_run(straight, _run(tmp_path / "b", steps=8, resume="auto"))


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="no SIGINT")
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_stops_after_the_step_with_a_checkpoint(tmp_path, sig):
    # A test process started in the background inherits SIGINT ignored, which training leaves alone as it
    # leaves any handler of the application's own: start from Python's defaults, as a terminal gives.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    inherited_term = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        _signal_stops_after_the_step(tmp_path, sig)
    finally:
        signal.signal(signal.SIGINT, inherited)
        signal.signal(signal.SIGTERM, inherited_term)


def _signal_stops_after_the_step(tmp_path, sig):
    straight = _run(tmp_path / "a", steps=8)

    def send() -> None:
        os.kill(os.getpid(), getattr(signal, sig))

    with pytest.raises(TrainingInterrupted, match=rf"{sig}: stopped after step 5") as e:
        _run(tmp_path / "b", steps=8, data=_Faulty(DATA, 1 + 8 * 4 + 3, send), budget=data_budget(DATA))
    assert e.value.step == 5 and load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    _same_run(straight, _run(tmp_path / "b", steps=8, resume="auto"))


def test_an_applications_own_signal_handler_stays_in_charge(tmp_path):
    seen = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        r = _run(
            tmp_path,
            steps=4,
            data=_Faulty(DATA, 1 + 8 + 3, lambda: os.kill(os.getpid(), signal.SIGTERM)),
            budget=data_budget(DATA),
        )
    finally:
        signal.signal(signal.SIGTERM, old)
    assert seen == [signal.SIGTERM] and r.step == 4  # the run went on; the application decided


def test_killed_mid_record_leaves_a_half_line_that_resume_drops(tmp_path):
    straight = _run(tmp_path / "a", steps=8)
    _run(tmp_path / "b", steps=4, checkpoint_every=4)
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "rate_bi')  # the process died inside write()
    assert [r["step"] for r in read_jsonl(tmp_path / "b" / "metrics.jsonl")] == [2, 4]
    _same_run(straight, _run(tmp_path / "b", steps=8, resume="auto"))


def test_a_damaged_record_inside_the_metrics_is_named(tmp_path):
    _run(tmp_path, steps=4)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    (tmp_path / "metrics.jsonl").write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    with pytest.raises(InputError, match="line 2 is not JSON"):
        _run(tmp_path, steps=6, resume="auto")


def test_finished_run_resumed_at_its_end_keeps_its_records(tmp_path):
    _run(tmp_path, steps=5)  # ends off the record grid: a partial last record
    before = (tmp_path / "metrics.jsonl").read_bytes()
    r = _run(tmp_path, steps=5, resume="auto", eval_at_end=True)
    assert (tmp_path / "metrics.jsonl").read_bytes() == before and r.final is not None
    assert not list(tmp_path.glob("*.tmp"))


# ---- data ------------------------------------------------------------------------------------------------

BAD_DATA = {
    "8-bit values": ([torch.full((1, 8, 8), 255.0)] * 16, r"\[255, 255\] \(8-bit values\? divide by 255\)"),
    "NaN": ([torch.full((1, 8, 8), math.nan)] * 16, "expected finite values in \\[0, 1\\]"),
    "negative": ([torch.full((1, 8, 8), -0.5)] * 16, "expected finite values in \\[0, 1\\]"),
    "dict items": ([{"image": torch.zeros(1, 8, 8)}] * 16, "dataset\\[0\\] is a dict"),
    "string items": (["a.png"] * 16, "dataset\\[0\\] is a str"),
    "shapes differ": ([torch.zeros(1, 8, 8)] * 15 + [torch.zeros(1, 4, 4)], "differ in shape"),
    "1-D images": ([torch.zeros(64)] * 16, "expected \\[C, H, W\\] or \\[H, W\\]"),
    "empty": ([], "empty"),
    "less than a batch": ([torch.zeros(1, 8, 8)] * 4, "less than one batch of 8"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_dataset_is_refused_in_one_line(tmp_path, case):
    data, match = BAD_DATA[case]
    with pytest.raises(InputError, match=match) as e:
        train(tiny_config(tmp_path, steps=2), model=tiny_model(), dataset=data)
    assert "\n" not in str(e.value)


def test_default_model_on_images_it_cannot_read_is_refused(tmp_path):
    with pytest.raises(InputError, match="BurgessVAE\\) reads \\[C, 64, 64\\] images.*\\[1, 8, 8\\]"):
        train(tiny_config(tmp_path, steps=2), dataset=DATA)


def test_target_rate_with_an_unknown_budget_is_refused(tmp_path):
    unknown = Budget(None, None, None, 64, None, "64 images of a stream", None, "not computed")
    with pytest.raises(InputError, match="budget H\\(X\\) of 64 images of a stream is unknown.*target_bits"):
        train(
            tiny_config(tmp_path, steps=2, target_bits=None), model=tiny_model(), dataset=DATA, budget=unknown
        )


# ---- models and their declared output --------------------------------------------------------------------


class _Undeclared(TinyVAE):
    def __init__(self) -> None:
        super().__init__()
        del self.decoder_output


class _Tanh(TinyVAE):
    def decode(self, z):
        return torch.tanh(super().decode(z))


class _Pair(TinyVAE):
    def forward(self, x):
        return super().forward(x)[:2]


class _Dict(TinyVAE):
    def forward(self, x):
        out, mu, logvar = super().forward(x)
        return {"recon": out, "mu": mu, "logvar": logvar}


MODELS = {
    "undeclared": (lambda: _Undeclared(), {}, "declare what _Undeclared's decoder returns"),
    "tanh declared probs": (lambda: _Tanh(decoder_output="probs"), {}, "declared 'probs'.*tanh output"),
    "too few channels for categorical256": (
        lambda: TinyVAE(),
        {"likelihood": "categorical256"},
        "likelihood 'categorical256' \\(logits\\) needs float \\[B, 256, H, W\\]",
    ),
    "2C channels missing for discretized_gaussian": (
        lambda: TinyVAE(decoder_output="params"),
        {"likelihood": "discretized_gaussian"},
        "needs float \\[B, 2, H, W\\]",
    ),
    "a pair": (lambda: _Pair(), {}, "returned a tuple of 2; expected \\(decoder output, mu, logvar\\)"),
    "a dict": (lambda: _Dict(), {}, "returned a dict"),
    "declared kind unknown to the likelihood": (
        lambda: TinyVAE(decoder_output="mean"),
        {},
        "decoder_output 'mean' does not fit likelihood 'bernoulli'",
    ),
    "config and model disagree": (
        lambda: TinyVAE(decoder_output="probs"),
        {"decoder_output": "logits"},
        "decoder_output is 'logits' but the model declares 'probs'",
    ),
}


@pytest.mark.parametrize("case", sorted(MODELS))
def test_model_that_does_not_emit_the_declared_layout_is_refused(tmp_path, case):
    make, settings, match = MODELS[case]
    torch.manual_seed(0)
    with pytest.raises(InputError, match=match):
        train(tiny_config(tmp_path, steps=2, **settings), model=make(), dataset=DATA)
    assert not (tmp_path / "checkpoint.pt").exists()


# ---- settings --------------------------------------------------------------------------------------------

BAD_SETTINGS = {
    "lr a string": ({"lr": "0.1"}, "lr must be a finite number > 0"),
    "lr NaN": ({"lr": math.nan}, "lr must be a finite number > 0"),
    "beta infinite": ({"beta": math.inf}, "beta must be a finite number >= 0"),
    "steps a bool": ({"steps": True}, "steps must be an integer >= 1"),
    "unknown likelihood": ({"likelihood": "poisson"}, "likelihood must be one of"),
    "scale for bernoulli": ({"scale": 0.1}, "scale is for likelihoods"),
    "discretize for bernoulli": ({"discretize": True}, "discretize is for likelihoods"),
    "gaussian mean without scale": ({"likelihood": "gaussian", "decoder_output": "mean"}, "needs scale"),
    "target for a fixed beta": ({"controller": "fixed", "target_bits": 3.0}, "target_bits is used by"),
    "target-rate from beta 0": ({"beta": 0.0}, "expected beta > 0"),
    "mixture of no components": ({"mixture_components": 0}, "mixture_components must be an integer >= 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_bad_setting_is_refused_naming_it(tmp_path, case):
    kw, match = BAD_SETTINGS[case]
    with pytest.raises(InputError, match=match):
        tiny_config(tmp_path, **kw)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--resume", "--overwrite"], "give one"),
        (["--likelihood", "poisson"], "invalid choice"),
        (["--scale", "-1"], "scale"),
    ],
)
def test_cli_refuses_conflicting_run_flags(tmp_path, capsys, argv, match):
    from elbits.cli import main

    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        rc = main(["train", "--out", str(tmp_path), *argv])
        raise SystemExit(rc)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 or err[-1].startswith("elbits train: error:"), err
    assert match in err[-1]


def test_cli_train_into_a_run_is_refused_in_one_line(tmp_path, capsys):
    from elbits.cli import main

    args = [
        "train",
        "--out",
        str(tmp_path),
        "--steps",
        "1",
        "--batch-size",
        "8",
        "--train-size",
        "16",
        "--z-dim",
        "2",
        "--no-progress",
        "--no-tensorboard",
    ]
    assert main(args) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(args))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1].startswith("elbits train: error:") and "holds a run" in err[-1] and "--overwrite" in err[-1]
    )


def test_config_defaults_for_old_checkpoints():
    # A checkpoint from before the likelihood settings reads as the Bernoulli logits run it was.
    old = {
        k: v
        for k, v in TrainConfig().to_dict().items()
        if k not in ("likelihood", "decoder_output", "mixture_components", "scale", "discretize", "overwrite")
    }
    cfg = TrainConfig.from_dict(old)
    assert cfg.likelihood == "bernoulli" and cfg.decoder_output is None
