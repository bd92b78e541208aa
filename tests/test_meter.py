"""RateDistortionMeter: exact sums, units, budget bound, checkpointing, and 2-process gloo all-reduce."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from elbits.meter import RateDistortionMeter
from elbits.terms import ELBOTerms
from elbits.units import LN2, Quantity

REQUIRED = [
    "rate_nats",
    "rate_bits",
    "distortion_nats",
    "distortion_bits",
    "distortion_bits_per_dim",
    "samples",
    "active_units",
]


def _batches(seed: int = 0, n_batches: int = 4, b: int = 6, z: int = 5, dims: int = 64):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        kl = torch.rand(b, z, generator=g, dtype=torch.float64)
        kl[:, 3] = 0.001  # an inactive dimension
        out.append(ELBOTerms(torch.rand(b, generator=g, dtype=torch.float64) * 100, kl, dims))
    return out


def test_sums_match_hand_computation():
    batches = _batches()
    m = RateDistortionMeter()
    for t in batches:
        m.update(t)
    recon = torch.cat([t.recon for t in batches])
    kl = torch.cat([t.kl for t in batches])
    s = m.scalars()
    for k in REQUIRED:
        assert isinstance(s[k], float)
    assert s["samples"] == 24
    assert s["dims"] == 64.0 and s["z_dim"] == 5.0
    assert s["distortion_nats"] == pytest.approx(recon.mean().item(), rel=1e-12)
    assert s["distortion_bits"] == pytest.approx(recon.mean().item() / LN2, rel=1e-12)
    assert s["distortion_bits_per_dim"] == pytest.approx(recon.mean().item() / LN2 / 64, rel=1e-12)
    assert s["rate_nats"] == pytest.approx(kl.sum(1).mean().item(), rel=1e-12)
    assert s["rate_bits"] == pytest.approx(kl.sum(1).mean().item() / LN2, rel=1e-12)
    assert m.kl_per_dim_bits.tolist() == pytest.approx((kl.mean(0) / LN2).tolist(), rel=1e-12)
    assert s["active_units"] == 4.0
    assert m.rate_bits == pytest.approx(s["rate_bits"]) and m.distortion_bits == pytest.approx(
        s["distortion_bits"]
    )
    assert m.rate.bits == pytest.approx(s["rate_bits"])


def test_active_threshold_configurable():
    m = RateDistortionMeter(active_threshold=0.5)
    m.update(ELBOTerms(torch.zeros(2), torch.tensor([[0.4, 0.6, 2.0], [0.4, 0.6, 0.0]]), 10))
    assert m.scalars()["active_units"] == 2.0  # mean KLs 0.4, 0.6, 1.0 nats: two above 0.5
    m = RateDistortionMeter(active_threshold=0.55)
    m.update(ELBOTerms(torch.zeros(2), torch.tensor([[0.4, 0.6, 2.0], [0.4, 0.6, 0.0]]), 10))
    assert m.active_units == 2


def test_budget_and_bound_slack():
    h = Quantity(math.log2(737280), "bits")
    m = RateDistortionMeter(budget=h)
    m.update(ELBOTerms(torch.tensor([2.0, 4.0]), torch.tensor([[5.0, 1.0], [3.0, 1.0]]), 4096))
    s = m.scalars()
    assert s["budget_bits"] == pytest.approx(math.log2(737280))
    assert s["bound_nats"] == pytest.approx(h.nats - 3.0)
    assert s["bound_slack_nats"] == pytest.approx(5.0 - (h.nats - 3.0))
    assert s["bound_slack_bits"] == pytest.approx(s["bound_slack_nats"] / LN2)
    plain = RateDistortionMeter()
    plain.update(ELBOTerms(torch.tensor([2.0]), torch.tensor([[1.0, 1.0]]), 4096))
    assert not any(k.startswith(("budget", "bound")) for k in plain.scalars())


def test_state_dict_roundtrip_and_reset():
    a, b = RateDistortionMeter(), RateDistortionMeter()
    for t in _batches(1):
        a.update(t)
    b.load_state_dict(a.state_dict())
    assert a.scalars() == b.scalars()
    a.reset()
    with pytest.raises(RuntimeError):
        a.scalars()
    assert "empty" in repr(a)


def test_rejects_inconsistent_batches():
    m = RateDistortionMeter()
    m.update(ELBOTerms(torch.zeros(2), torch.zeros(2, 3), 10))
    with pytest.raises(ValueError):
        m.update(ELBOTerms(torch.zeros(2), torch.zeros(2, 4), 10))
    with pytest.raises(ValueError):
        m.update(ELBOTerms(torch.zeros(2), torch.zeros(2, 3), 11))


def _worker(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        m = RateDistortionMeter(budget=10.0)
        for i, t in enumerate(_batches()):
            if i % world == rank:  # each rank sees a disjoint half of the data
                m.update(t)
        s = m.scalars()
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump(s, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_ddp_gloo_equals_single_process(tmp_path):
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'init'}"
    mp.spawn(_worker, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    single = RateDistortionMeter(budget=10.0)
    for t in _batches():
        single.update(t)
    want = single.scalars()
    for rank in range(2):
        with open(tmp_path / f"rank{rank}.json") as f:
            got = json.load(f)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-12, abs=1e-12), k
