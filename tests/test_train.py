"""Training loop: resume equivalence, checkpoints, metrics, user models, CLI, and a 2-process gloo DDP run."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
from torch import nn

from elbits.train import (
    TrainConfig,
    load_checkpoint,
    rd_pass,
    read_jsonl,
    tensorboard_available,
    train,
)
from elbits.train.data import IndexStream, step_seed
from elbits.train.logging import TensorBoardLogger

TINY = dict(train_size=256, batch_size=16, z_dim=4, log_every=2, progress=False, tensorboard=False)


def _strip(records):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]


def test_resume_matches_uninterrupted(tmp_path):
    # target-rate: a controller with state (beta, EMA) that must survive the checkpoint too.
    common = dict(TINY, controller="target-rate", target_bits=6.0, controller_lr=0.05, eval_at_end=False)
    straight = train(TrainConfig(steps=8, out_dir=str(tmp_path / "a"), **common))
    # checkpoint_every=3: the window meter is mid-way (log_every=2) when the first half stops at step 3.
    half = train(TrainConfig(steps=3, checkpoint_every=3, out_dir=str(tmp_path / "b"), **common))
    assert half.step == 3
    resumed = train(TrainConfig(steps=8, resume="auto", out_dir=str(tmp_path / "b"), **common))
    assert resumed.step == 8
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (
        straight.criterion.state_dict()["controller_state._extra_state"]
        == resumed.criterion.state_dict()["controller_state._extra_state"]
    )
    ha, hb = (
        _strip(read_jsonl(tmp_path / "a" / "metrics.jsonl")),
        _strip(read_jsonl(tmp_path / "b" / "metrics.jsonl")),
    )
    assert [r["step"] for r in ha] == [2, 4, 6, 8]
    assert ha == hb
    oa = load_checkpoint(tmp_path / "a" / "checkpoint.pt")["optimizer"]["state"]
    ob = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["optimizer"]["state"]
    for k in oa:
        for name in oa[k]:
            assert torch.equal(oa[k][name], ob[k][name])


def test_checkpoint_contents_and_resume_checks(tmp_path):
    r = train(TrainConfig(steps=2, out_dir=str(tmp_path), controller="capacity", capacity_bits=5.0, **TINY))
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert {"model", "optimizer", "criterion", "meters", "step", "config", "world_size"} <= set(ck)
    assert ck["step"] == 2 and ck["world_size"] == 1
    assert ck["criterion"]["controller_state._extra_state"]["type"] == "CapacityAnnealing"
    assert ck["criterion"]["controller_state._extra_state"]["steps"] == 2
    # final.json is the end-of-run pass over all training images, in bits with the budget
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["samples"] == 256 and final["budget"]["empirical_bits"] == pytest.approx(8.0)
    assert final["rate_bits"] == pytest.approx(r.final["rate_bits"])
    rec = read_jsonl(tmp_path / "metrics.jsonl")[-1]
    for key in ("rate_bits", "distortion_bits", "bound_slack_bits", "beta", "capacity_bits", "loss_nats"):
        assert key in rec
    with pytest.raises(ValueError, match="batch_size"):
        train(
            TrainConfig(
                steps=4,
                out_dir=str(tmp_path),
                resume="auto",
                controller="capacity",
                capacity_bits=5.0,
                **{**TINY, "batch_size": 8},
            )
        )


def test_index_stream_is_sampler_order_and_resumable():
    ds = list(range(100))
    s = IndexStream(ds, batch_size=10, seed=3)
    assert s.batches_per_epoch == 10
    first = [s.batch(k) for k in range(20)]
    fresh = IndexStream(ds, batch_size=10, seed=3)
    assert fresh.batch(13) == first[13]
    assert sorted(sum(first[:10], [])) == list(range(100))  # an epoch is a permutation
    assert first[:10] != first[10:]
    r0, r1 = IndexStream(ds, 10, 3, rank=0, world=2), IndexStream(ds, 10, 3, rank=1, world=2)
    assert not set(r0.batch(0)) & set(r1.batch(0))
    assert step_seed(0, 5, 0) != step_seed(0, 5, 1) != step_seed(0, 6, 1)


class _TinyVAE(nn.Module):
    """A user model: no encode/decode, just forward -> (logits, mu, logvar)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(64, 4)
        self.dec = nn.Linear(2, 64)

    def forward(self, x):
        h = self.enc(x.flatten(1))
        mu, logvar = h[:, :2], h[:, 2:]
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.dec(z).view_as(x), mu, logvar


def test_user_model_and_dataset(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = [((torch.rand(1, 8, 8, generator=g) < 0.3).float(), 0) for _ in range(64)]
    torch.manual_seed(0)
    model = _TinyVAE()
    r = train(
        TrainConfig(
            steps=10,
            batch_size=8,
            log_every=5,
            out_dir=str(tmp_path),
            progress=False,
            tensorboard=False,
            controller="geco",
            target_bits=30.0,
            decoder_output="logits",
        ),
        model=model,
        dataset=data,
    )
    assert r.model is model and r.step == 10
    # The budget comes from these 64 images themselves (all distinct: log2 64), not from dSprites.
    assert r.budget.empirical_bits == pytest.approx(6.0) and r.budget.factor_bits is None
    assert r.final["samples"] == 64 and r.final["distortion_bits_per_dim"] > 0
    assert "geco_lambda" in r.history[-1]
    m = rd_pass(model, data, budget_bits=6.0, head=r.head).meter
    assert m.scalars()["samples"] == 64


def test_tensorboard_is_optional(tmp_path):
    tb = TensorBoardLogger(tmp_path / "tb")
    assert tb.enabled == tensorboard_available()
    tb.log({"rate_bits": 1.0, "step": 1}, 1)
    tb.close()
    assert not TensorBoardLogger(tmp_path / "tb2", enabled=False).enabled


def test_config_validation():
    with pytest.raises(ValueError, match="controller"):
        TrainConfig(controller="cyclic")
    with pytest.raises(ValueError, match="target_bits"):
        TrainConfig(controller="geco")
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)


def test_cli_train(tmp_path, capsys):
    from elbits.cli import main

    rc = main(
        [
            "train",
            "--out",
            str(tmp_path),
            "--steps",
            "3",
            "--batch-size",
            "16",
            "--train-size",
            "128",
            "--z-dim",
            "3",
            "--log-every",
            "1",
            "--no-progress",
            "--controller",
            "fixed",
            "--beta",
            "4",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    first = json.loads(out.splitlines()[0])
    assert first["step"] == 3 and first["beta"] == 4.0 and "rate_bits" in first
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    # The torchrun path: the environment torchrun sets, and train() initialises gloo itself.
    os.environ.update(
        {
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    r = train(
        TrainConfig(
            steps=4,
            out_dir=os.path.join(out, "run"),
            controller="target-rate",
            target_bits=5.0,
            device="cpu",
            **TINY,
        )
    )
    assert not torch.distributed.is_initialized()  # train() destroyed the group it made
    params = torch.cat([p.detach().flatten() for p in r.model.parameters()])
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(
            {
                "final": r.final,
                "history": r.history,
                "beta": r.criterion.beta,
                "params": params[:50].tolist(),
                "meter_local": r.meter.count,
            },
            f,
        )


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_ddp_gloo_two_processes(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    a, b = ranks
    assert a["params"] == b["params"]  # DDP keeps the replicas equal
    assert a["beta"] == b["beta"]  # the controller steps on global figures on every rank
    assert a["final"] == b["final"]  # all-reduced: the same global figures on both ranks
    assert a["final"]["samples"] == 256  # the end-of-run pass covers the whole set, split over the ranks
    hist = a["history"]
    assert [h["step"] for h in hist] == [2, 4]
    assert hist[-1]["samples"] == 2 * 2 * 16  # log_every steps x 2 ranks x batch 16: global, not local
    assert hist[-1]["samples_seen"] == 4 * 2 * 16
    ck = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ck["world_size"] == 2 and len(ck["meters"]) == 2
