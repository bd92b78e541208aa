"""``elbits evaluate``: the shared disentangling-vae checkpoint, .npy images, JSON keys, elbits
checkpoints."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from reference_files import REAL_PNG, VAE_DIR, VAE_MODEL

from elbits.cli import main
from elbits.evaluate import evaluate_checkpoint, evaluate_model, load_images, load_model
from elbits.models import BurgessVAE

needs_shared = pytest.mark.skipif(
    not VAE_MODEL.is_file() or not REAL_PNG.is_file(), reason="shared reference checkpoints not present"
)


@needs_shared
def test_cli_json_on_real_samples(tmp_path, capsys):
    from elbits.data.fidelity import load_reference_grid

    imgs = load_reference_grid(REAL_PNG)[:24]
    npy = tmp_path / "real.npy"
    np.save(npy, imgs[:, None])  # [N, 1, 64, 64]
    table = tmp_path / "ev.csv"
    assert (
        main(
            [
                "evaluate",
                str(VAE_DIR),
                "--images",
                str(npy),
                "--json",
                "--samples",
                "2",
                "--mi-samples",
                "2",
                "--csv",
                str(table),
                "--label",
                "real24",
            ]
        )
        == 0
    )
    d = json.loads(capsys.readouterr().out)
    lines = table.read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("run,source,rate_bits") and lines[1].startswith("real24,")
    for key in (
        "rate_bits",
        "distortion_bits",
        "distortion_mu_bits",
        "distortion_samples",
        "kl_per_dim_bits",
        "active_units",
        "mi_bits",
        "marginal_kl_bits",
        "log_n_bits",
        "h_bits",
        "factor_bits",
    ):
        assert key in d, key
    assert d["images"] == 24 and d["distortion_samples"] == 2
    assert len(d["kl_per_dim_bits"]) == 10
    assert d["rate_bits"] == pytest.approx(sum(d["kl_per_dim_bits"]))
    # The beta = 1 model spends ~36 bits per image (its training log: 25.4 nats), far above log2 24.
    assert 25 < d["rate_bits"] < 50
    assert 5 < d["distortion_mu_bits"] <= d["distortion_bits"] + 1.0 < 60
    assert d["mi_bits"] == pytest.approx(math.log2(24), abs=0.01)  # posteriors do not overlap: I = log N
    assert d["mi_bits"] + d["marginal_kl_bits"] == pytest.approx(d["rate_bits"])
    assert d["h_bits"] == pytest.approx(math.log2(24))


@needs_shared
def test_cli_text_on_png_grid_and_procedural(tmp_path, capsys):
    png = tmp_path / "ev.png"
    assert (
        main(["evaluate", str(VAE_MODEL), "--images", str(REAL_PNG), "--samples", "1", "--plot", str(png)])
        == 0
    )
    out = capsys.readouterr().out
    assert "rate R" in out and "I(X;Z)" in out and "active units: 10" in out
    assert png.is_file() and png.stat().st_size < 200_000
    ev = evaluate_checkpoint(
        VAE_DIR, limit=48, samples=1, mi_points=16, mi_samples=1, device="cpu", distortion_images=8
    )
    d = ev.to_dict()
    assert ev.images == 48 and "procedural" in ev.source and d["distortion_images"] == 8
    assert 20 < ev.rate_bits < 60 and d["distortion_bits"] > 0
    assert d["nelbo_bits"] == pytest.approx(d["rate_bits"] + d["distortion_bits"])


def test_elbits_checkpoint_and_npy_validation(tmp_path):
    from elbits.train import save_checkpoint

    torch.manual_seed(0)
    model = BurgessVAE(z_dim=3)
    ck = save_checkpoint(
        tmp_path / "checkpoint.pt", {"step": 7, "config": {"z_dim": 3}, "model": model.state_dict()}
    )
    loaded, info = load_model(tmp_path)
    assert info["kind"] == "elbits" and info["step"] == 7 and info["z_dim"] == 3
    x = (torch.rand(20, 64, 64, generator=torch.Generator().manual_seed(1)) > 0.8).to(torch.uint8)
    np.save(tmp_path / "x.npy", x.numpy())
    assert load_images(tmp_path / "x.npy").shape == (20, 1, 64, 64)
    ev = evaluate_model(loaded, load_images(tmp_path / "x.npy"), samples=3, mi_points=None, mi_samples=2)
    d = ev.to_dict()
    assert d["distortion_samples"] == 3 and len(d["kl_per_dim_bits"]) == 3
    assert d["mi_bits"] <= d["log_n_bits"] + 1e-9
    assert ev.model == {} and ck.is_file()
    np.save(tmp_path / "bad.npy", np.full((2, 64, 64), 7, np.uint8))
    with pytest.raises(ValueError, match="0 or 1"):
        load_images(tmp_path / "bad.npy")
    np.save(tmp_path / "shape.npy", np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="64, 64"):
        load_images(tmp_path / "shape.npy")


def test_progress_bar_counts_every_image_with_a_decoded_subset(monkeypatch):
    import elbits.experiments.evaluate

    counts: list[int] = []

    class Bar:
        def __init__(self, total: int, **kw: object) -> None:
            self.total = total

        def update(self, k: int) -> None:
            counts.append(k)

        def close(self) -> None:
            pass

    monkeypatch.setattr(elbits.experiments.evaluate, "tqdm", Bar)
    torch.manual_seed(0)
    x = (torch.rand(20, 64, 64, generator=torch.Generator().manual_seed(1)) > 0.8).to(torch.uint8)
    ev = evaluate_model(
        BurgessVAE(z_dim=3),
        x,
        samples=1,
        batch_size=8,
        mi_points=None,
        mi_samples=1,
        progress=True,
        distortion_images=5,
    )
    assert ev.distortion_images == 5
    assert counts == [8, 8, 4]
