"""`elbits demo` end to end on a few steps: every file of the report, and report.md's numbers are the
meter's."""

from __future__ import annotations

import json
import math

import pytest
import torch

from elbits.models import BurgessVAE
from elbits.train import load_checkpoint, rd_pass
from elbits.train.data import build_dataset

TINY = [
    "--steps",
    "6",
    "--train-size",
    "256",
    "--batch-size",
    "16",
    "--z-dim",
    "4",
    "--log-every",
    "2",
    "--no-tensorboard",
]


def _row(md: str, label: str) -> list[str]:
    """The cells of the markdown table row that starts with ``label``."""
    for line in md.splitlines():
        if line.startswith(f"| {label} |"):
            return [c.strip() for c in line.strip().strip("|").split("|")]
    raise AssertionError(f"no row {label!r} in report.md")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from elbits.cli import main

    out = tmp_path_factory.mktemp("demo") / "report"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["demo", "--out", str(out), "--no-progress", *TINY])
    assert rc == 0
    return out, buf.getvalue()


def test_demo_writes_every_file(demo):
    out, printed = demo
    for name in (
        "report.md",
        "summary.json",
        "curves.png",
        "kl_per_dim.png",
        "reconstructions.png",
        "rd_plane.png",
        "run/metrics.jsonl",
        "run/checkpoint.pt",
        "run/final.json",
    ):
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
    for name in ("curves.png", "kl_per_dim.png", "reconstructions.png", "rd_plane.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in (out / "report.md").read_text()
    # The terminal summary: where the report is, and the table in bits.
    assert f"report: {out / 'report.md'}" in printed
    for label in (
        "factor entropy",
        "H(X) of the training set",
        "rate R (KL)",
        "distortion D (recon)",
        "slack",
        "active units",
        "seed weights (0.8, 0.2): beta",
    ):
        assert label in printed


def test_report_numbers_are_the_meters(demo):
    out, _ = demo
    md = (out / "report.md").read_text()
    ck = load_checkpoint(out / "run" / "checkpoint.pt")
    cfg = ck["config"]
    # Re-measure from the checkpoint: the report's final figures are the meter's over the training set.
    model = BurgessVAE(z_dim=cfg["z_dim"])
    model.load_state_dict(ck["model"])
    ds = build_dataset(cfg["npz"], cfg["train_size"], cfg["data_seed"])
    summary = json.loads((out / "summary.json").read_text())
    h = summary["budget"]["budget_bits"]
    s = rd_pass(model, ds, budget_bits=h, seed=cfg["seed"]).meter.scalars()
    assert s["samples"] == 256
    rate = _row(md, "rate R = KL")
    assert float(rate[1]) == pytest.approx(s["rate_bits"], abs=1.5e-3)
    assert float(rate[2]) == pytest.approx(s["rate_nats"], abs=1.5e-3)
    dist = _row(md, "distortion D = reconstruction")
    assert float(dist[1]) == pytest.approx(s["distortion_bits"], abs=1.5e-3)
    assert float(_row(md, "negative ELBO D + R")[1]) == pytest.approx(s["nelbo_bits"], abs=1.5e-3)
    assert float(_row(md, "bound H − D")[1]) == pytest.approx(s["bound_bits"], abs=1.5e-3)
    assert float(_row(md, "slack R − (H − D)")[1]) == pytest.approx(s["bound_slack_bits"], abs=1.5e-3)
    assert f"**{int(s['active_units'])} of 4**" in md
    kl = _row(md, "KL (bits)")[1:]
    assert [float(v) for v in kl] == pytest.approx([s[f"kl_{i}_bits"] for i in range(4)], abs=1.5e-3)
    # The budget, computed in the run: factor entropy exactly, H(X) of the 256 training images (all distinct).
    assert float(_row(md, "factor entropy log(1·3·6·40·32·32)")[1]) == pytest.approx(
        math.log2(737280), abs=1e-3
    )
    assert float(_row(md, "empirical H(X)")[1]) == pytest.approx(8.0, abs=1e-3)
    assert float(_row(md, "budget H")[1]) == pytest.approx(h, abs=1e-3)
    marg = float(_row(md, "Σ_i H(X_i), pixel marginals")[1])
    assert 500 < marg < 1000
    # The seed's table with measured values: weights, actual and weighted terms, effective beta.
    recon = _row(md, "L_recon")
    assert recon[1] == "0.8" and float(recon[2]) == pytest.approx(s["distortion_nats"], abs=1.5e-3)
    assert float(recon[5]) == pytest.approx(0.8 * s["distortion_nats"] / 4096, rel=1e-3)
    assert _row(md, "L_kl")[1] == "0.2"
    assert "Effective beta **1024**" in md and "beta = 0.25" in md
    # The run's own beta beside them: the demo's target-rate controller, last step's value.
    final = json.loads((out / "run" / "final.json").read_text())
    assert summary["run_beta"] == final["beta"]
    assert f"This run trained with beta = **{final['beta']:.4g}**" in md
    assert ck["criterion"]["controller_state._extra_state"]["type"] == "TargetRate"
    # The log table and curves come from metrics.jsonl.
    assert summary["history"][-1]["step"] == 6
    assert torch.tensor([r["rate_bits"] for r in summary["history"]]).isfinite().all()
