"""``elbits demo colour`` end to end on a few steps (report.md with the bounds table and bits/dim, the
PNGs, nothing left half-written, an occupied --out refused) and ``elbits evaluate`` on a colour checkpoint
(bits/dim in the text and under the meter's names in --json, images of another shape refused)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from elbits.cli import main

pytest.importorskip("skimage", reason="the photo patches need scikit-image (elbits[colour])")

TINY = [
    "--steps",
    "3",
    "--train-size",
    "64",
    "--batch-size",
    "16",
    "--z-dim",
    "4",
    "--log-every",
    "1",
    "--codec-images",
    "1",
    "--no-progress",
    "--no-tensorboard",
]
PNGS = ("curves.png", "kl_per_dim.png", "reconstructions.png", "samples.png", "rd_plane.png")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def demo(tmp_path_factory, cache):
    import contextlib
    import io

    out = tmp_path_factory.mktemp("colour") / "report"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["demo", "colour", "--out", str(out), *TINY])
    assert rc == 0
    return out, buf.getvalue()


def _row(md: str, label: str) -> list[str]:
    for line in md.splitlines():
        if line.startswith(f"| {label}"):
            return [c.strip() for c in line.strip().strip("|").split("|")]
    raise AssertionError(f"no row {label!r} in report.md")


def test_colour_demo_writes_the_report(demo):
    out, printed = demo
    md = (out / "report.md").read_text()
    for name in PNGS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"]({name})" in md
    assert (out / "run" / "checkpoint.pt").is_file()
    assert not any(p.name.startswith(f".{out.name}.partial") for p in out.parent.iterdir())
    s = json.loads((out / "summary.json").read_text())
    f = s["final"]
    # bits/dim: the meter's figures over the 3 x 32 x 32 subpixels, in the final table.
    assert s["dims"] == 3072 and s["likelihood"] == "logistic_mixture" and s["steps"] == 3
    nelbo = _row(md, "negative ELBO D + R")
    assert float(nelbo[1]) == pytest.approx(f["nelbo_bits"], abs=1e-3)
    assert float(nelbo[2]) == pytest.approx(f["nelbo_bits"] / 3072, abs=1e-4)
    # The bounds table on the same 64 patches: log2 N exactly, the codecs, the model's rows.
    keys = {r["key"]: r for r in s["bounds"]["rows"]}
    assert s["bounds"]["images"] == 64
    assert keys["log2_n"]["bits_per_image"] == pytest.approx(math.log2(64))
    assert {"png", "nelbo", "mi", "bitsback_net"} <= set(keys)
    assert float(_row(md, "PNG (Pillow)")[2]) == pytest.approx(keys["png"]["bits_per_dim"], abs=1e-4)
    assert "bits-back codec, net (1 of 64 images)" in md
    assert f"**{f['nelbo_bits_per_dim']:.3f} bits/dim**" in md
    # The terminal summary in bits/dim.
    assert "-ELBO = D + R" in printed and "PNG (Pillow)" in printed and "bits/dim" in printed
    assert f"report: {out / 'report.md'}" in printed


def test_colour_demo_refuses_an_occupied_out(tmp_path, capsys, cache):
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["demo", "colour", "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_demo_job_flags_are_refused_in_one_line(tmp_path, capsys):
    assert main(["demo", "--codec-images", "2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "elbits demo colour" in err[0]
    assert main(["demo", "colour", "--likelihood", "bernoulli", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "8-bit colour data" in err[0]
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def colour_checkpoint(tmp_path_factory, cache):
    run = tmp_path_factory.mktemp("colour_run")
    args = ["--data", "colour-sprites", "--size", "32", "--steps", "5", "--batch-size", "16"]
    args += ["--train-size", "64", "--no-progress", "--no-tensorboard", "--out", str(run)]
    assert main(["train", *args]) == 0
    return run / "checkpoint.pt"


def test_evaluate_colour_checkpoint(colour_checkpoint, tmp_path, capsys):
    capsys.readouterr()
    plot = tmp_path / "ev.png"
    assert main(["evaluate", str(colour_checkpoint), "--limit", "48", "--json", "--plot", str(plot)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["images"] == 48 and d["dims"] == 3072 and d["model"]["colour"] is True
    assert d["nelbo_bits_per_dim"] == pytest.approx((d["rate_bits"] + d["distortion_bits"]) / 3072)
    assert d["distortion_bits_per_dim"] == pytest.approx(d["distortion_bits"] / 3072)
    assert len(d["kl_per_dim_bits"]) == 10 and d["mi_bits"] <= d["log_n_bits"] + 1e-9
    assert d["h_bits"] == pytest.approx(math.log2(48))  # distinct sprites, counted on their 8-bit levels
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The text report, on a folder of PNGs at the checkpoint's 32 px.
    from PIL import Image

    folder = tmp_path / "pngs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    assert main(["evaluate", str(colour_checkpoint), "--images", str(folder), "--preprocess", "none"]) == 0
    text = capsys.readouterr().out
    assert "bits/dim over 3072 subpixels: -ELBO" in text and "6 images [3, 32, 32]" in text


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--size", "64"], "reads [3, 32, 32]"),
        (["--data", "dsprites"], "colour model"),
        (["--images", "GREY", "--preprocess", "none"], "reads [3, 32, 32]"),
    ],
)
def test_evaluate_refuses_other_images_in_one_line(colour_checkpoint, tmp_path, capsys, extra, words):
    grey = tmp_path / "grey.npy"
    np.save(grey, np.zeros((4, 1, 32, 32), np.uint8))
    extra = [str(grey) if a == "GREY" else a for a in extra]
    assert main(["evaluate", str(colour_checkpoint), "--limit", "8", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
