"""``elbits sweep``: two betas x a few steps write the CSV and the plots."""

from __future__ import annotations

import json

import pytest

from elbits.cli import main
from elbits.sweep import CSV_FIELDS, read_csv


def test_sweep_two_betas_writes_csv_and_plots(tmp_path, capsys):
    out = tmp_path / "sw"
    rc = main(
        [
            "sweep",
            "--betas",
            "1,4",
            "--steps",
            "3",
            "--batch-size",
            "16",
            "--train-size",
            "128",
            "--eval-images",
            "64",
            "--samples",
            "1",
            "--mi-points",
            "32",
            "--mi-samples",
            "2",
            "--log-every",
            "1",
            "--out",
            str(out),
            "--no-progress",
            "--no-tensorboard",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-2])
    assert [p["label"] for p in printed["points"]] == ["beta=1", "beta=4"]
    rows = read_csv(out / "sweep.csv")
    assert [r["beta"] for r in rows] == [1.0, 4.0]
    assert set(CSV_FIELDS) <= set(rows[0])
    for r in rows:
        assert r["rate_bits"] >= 0 and r["distortion_bits"] > 0
        assert r["rate_bits"] == pytest.approx(r["mi_bits"] + r["marginal_kl_bits"], abs=1e-4)
        assert r["h_bits"] == pytest.approx(7.0)  # 128 distinct training images
        assert r["eval_images"] == 64 and r["log_n_bits"] == pytest.approx(6.0)
    for name in ("sweep_rd.png", "sweep_split.png"):
        png = out / name
        assert png.is_file() and 1000 < png.stat().st_size < 200_000
    assert (out / "beta_1" / "metrics.jsonl").is_file()


def test_sweep_needs_a_run(tmp_path):
    from elbits.sweep import run_sweep
    from elbits.train import TrainConfig

    with pytest.raises(ValueError):
        run_sweep(TrainConfig(steps=1), [], [], out_dir=tmp_path)
