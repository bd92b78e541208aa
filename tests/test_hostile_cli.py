"""Hostile command lines: each misuse of a subcommand prints one line ``elbits <command>: error: ...`` on
stderr, exits with status 2, shows no traceback and stops before any work starts."""

from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import elbits
from elbits.cli import _args as A
from elbits.cli import main
from elbits.errors import InputError

_WORK = pytest.fail  # stands in for every expensive entry point: a misuse must never get that far


@pytest.fixture(autouse=True)
def _no_work(monkeypatch, tmp_path):
    import elbits.benchmarking
    import elbits.entropy
    import elbits.experiments.demo
    import elbits.experiments.evaluate
    import elbits.experiments.sweep
    import elbits.train

    def started(*_a, **_k):
        _WORK("the command started work on a bad command line")

    for mod, name in [
        (elbits.train, "train"),
        (elbits.experiments.demo, "run_demo"),
        (elbits.experiments.sweep, "run_sweep"),
        (elbits.experiments.evaluate, "evaluate_checkpoint"),
        (elbits.benchmarking, "measure"),
        (elbits.entropy, "image_entropies"),
        (elbits, "elbo_terms"),
    ]:
        monkeypatch.setattr(mod, name, started)
    monkeypatch.chdir(tmp_path)  # the default --out folders are relative


def _writable(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@pytest.fixture
def paths(tmp_path):
    """Placeholders of the command lines below: files and folders of each hostile kind."""
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "model.pt").write_bytes(b"")  # passes the checkpoint path check; never loaded here
    (tmp_path / "notes.txt").write_text("not images")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if not _writable(ro):
        readonly = ro
    elif os.path.isdir("/proc") and not _writable(Path("/proc")):
        readonly = Path("/proc")  # root ignores the mode bits; /proc takes no new files even from root
    else:
        readonly = None
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    yield {
        "file": str(tmp_path / "a_file"),
        "dir": str(tmp_path / "empty_dir"),
        "missing": str(tmp_path / "nope"),
        "ckpt": str(tmp_path / "model.pt"),
        "txt": str(tmp_path / "notes.txt"),
        "ro": str(readonly) if readonly else None,
        "nocuda": f"cuda:{n}" if n else "cuda",  # a CUDA device this machine does not have
    }
    ro.chmod(0o755)


def _argv(line: str, paths: dict) -> list[str]:
    if "{ro}" in line and paths["ro"] is None:
        pytest.skip("no read-only folder for this user (root on a system without /proc)")
    return [tok.format(**paths) for tok in shlex.split(line)]


# (command line, a fragment the message must contain)
CASES = [
    # example
    ("example --batch 0", "--batch"),
    ("example --batch -5", "--batch"),
    ("example --batch 1.5", "positive integer"),
    ("example --batch many", "positive integer"),
    ("example --seed -1", "--seed"),
    ("example --seed nan", "--seed"),
    ("example --seed 99999999999999999999999", "--seed"),
    ("example --bacth 3", "unrecognized arguments"),
    # entropy
    ("entropy mnist", "invalid choice"),
    ("entropy dsprites --limit 0", "--limit"),
    ("entropy dsprites --limit -3", "--limit"),
    ("entropy dsprites --limit all", "--limit"),
    ("entropy dsprites --limit 1000000", "737280"),
    ("entropy dsprites --batch 0", "--batch"),
    ("entropy dsprites --npz {missing}", "no such file"),
    ("entropy dsprites --npz {dir}", "is a folder"),
    ("entropy dsprites --npz ''", "--npz"),
    # bench
    ("bench no-such-case", "unknown case"),
    ("bench --rounds 0", "--rounds"),
    ("bench --rounds -2", "--rounds"),
    ("bench --rounds inf", "--rounds"),
    ("bench --device {nocuda}", "--device"),
    ("bench --device tpu", "unknown device"),
    ("bench --device auto", "unknown device"),
    ("bench --device meta", "not supported"),
    # train: numbers
    ("train --steps 0", "--steps"),
    ("train --steps -1", "--steps"),
    ("train --steps nan", "--steps"),
    ("train --steps 1e3", "--steps"),
    ("train --batch-size 0", "--batch-size"),
    ("train --lr 0", "--lr"),
    ("train --lr -1e-3", "--lr"),
    ("train --lr nan", "--lr"),
    ("train --lr inf", "--lr"),
    ("train --lr fast", "--lr"),
    ("train --weight-decay -1", "--weight-decay"),
    ("train --beta -1", "--beta"),
    ("train --beta nan", "--beta"),
    ("train --beta inf", "--beta"),
    ("train --z-dim 0", "--z-dim"),
    ("train --seed -1", "--seed"),
    ("train --controller geco --target-bits 0", "--target-bits"),
    ("train --controller geco --target-bits -5", "--target-bits"),
    ("train --controller geco --target-bits nan", "--target-bits"),
    ("train --controller capacity --capacity-bits 0", "--capacity-bits"),
    ("train --controller capacity --capacity-steps 0", "--capacity-steps"),
    ("train --controller capacity --capacity-steps -1", "--capacity-steps"),
    ("train --controller capacity --gamma 0", "--gamma"),
    ("train --controller target-rate --controller-lr -1", "--controller-lr"),
    ("train --controller cyclic", "invalid choice"),
    ("train --train-size -1", "--train-size"),
    ("train --train-size 1000000", "737280"),
    ("train --data-seed -1", "--data-seed"),
    ("train --log-every 0", "--log-every"),
    ("train --checkpoint-every -1", "--checkpoint-every"),
    # train: devices and paths
    ("train --device {nocuda}", "--device"),
    ("train --device cuda:x", "unknown device"),
    ("train --device gpu", "unknown device"),
    ("train --npz {missing}", "no such file"),
    ("train --npz {dir}", "is a folder"),
    ("train --out {file}", "is a file"),
    ("train --out {file}/run", "is a file, not a folder"),
    ("train --out {ro}", "--out"),
    ("train --out {ro}/run", "--out"),
    ("train --out ''", "--out"),
    ("train --resume {missing}", "no such file"),
    ("train --resume {dir}", "without checkpoint.pt"),
    ("train --resume", "no elbits-run/checkpoint.pt"),
    ("train --resume auto", "no elbits-run/checkpoint.pt"),
    # train: flags that conflict
    ("train --controller geco", "needs --target-bits"),
    ("train --controller fixed --target-bits 30", "--target-bits"),
    ("train --controller capacity --target-bits 30", "--target-bits"),
    ("train --controller fixed --capacity-steps 100", "--capacity-steps"),
    ("train --controller target-rate --beta 0", "--beta > 0"),
    ("train --train-size 16 --batch-size 64", "less than one batch"),
    ("train --stpes 3", "unrecognized arguments"),
    # demo: the training options plus its report folder
    ("demo --steps 0", "--steps"),
    ("demo --lr nan", "--lr"),
    ("demo --out {file}", "is a file"),
    ("demo --out {ro}/report", "--out"),
    ("demo --controller geco", "needs --target-bits"),
    ("demo --device {nocuda}", "--device"),
    ("demo --resume", "run/checkpoint.pt"),
    ("demo --npz {missing}", "no such file"),
    # evaluate
    ("evaluate {missing}", "no such file"),
    ("evaluate {dir}", "without checkpoint.pt or model.pt"),
    ("evaluate {ckpt} --images {missing}", "no such file"),
    ("evaluate {ckpt} --images {txt}", ".npy"),
    ("evaluate {ckpt} --images {dir}", "is a folder"),
    ("evaluate {ckpt} --limit -1", "--limit"),
    ("evaluate {ckpt} --limit 1000000", "737280"),
    ("evaluate {ckpt} --samples 0", "--samples"),
    ("evaluate {ckpt} --mi-points -1", "--mi-points"),
    ("evaluate {ckpt} --mi-samples 0", "--mi-samples"),
    ("evaluate {ckpt} --distortion-images -1", "--distortion-images"),
    ("evaluate {ckpt} --batch-size 0", "--batch-size"),
    ("evaluate {ckpt} --seed nan", "--seed"),
    ("evaluate {ckpt} --data-seed -1", "--data-seed"),
    ("evaluate {ckpt} --device {nocuda}", "--device"),
    ("evaluate {ckpt} --plot {dir}", "is a folder"),
    ("evaluate {ckpt} --plot {ro}/kl.png", "--plot"),
    ("evaluate {ckpt} --csv {dir}", "is a folder"),
    ("evaluate {ckpt} --csv {file}/rows.csv", "is a file, not a folder"),
    ("evaluate {ckpt} --label run1", "--label"),
    ("evaluate {ckpt} --plot out.png --csv out.png", "two different files"),
    ("evaluate", "checkpoint"),
    # sweep
    ("sweep --betas nan", "--betas"),
    ("sweep --betas 1,-2", "--betas"),
    ("sweep --betas 1,x", "--betas"),
    ("sweep --targets 0", "--targets"),
    ("sweep --targets 5,inf", "--targets"),
    ("sweep --betas '' --targets ''", "nothing to train"),
    ("sweep --betas 1,2,1.0", "more than once"),
    ("sweep --betas '' --targets 5,5", "more than once"),
    ("sweep --controller geco --target-bits 30", "--controller"),
    ("sweep --target-bits 30", "--targets"),
    ("sweep --resume", "--resume"),
    ("sweep --capacity-steps 10", "--capacity-steps"),
    ("sweep --eval-images -1", "--eval-images"),
    ("sweep --samples 0", "--samples"),
    ("sweep --mi-points -1", "--mi-points"),
    ("sweep --mi-samples 0", "--mi-samples"),
    ("sweep --init {missing}", "no such file"),
    ("sweep --init {dir}", "without checkpoint.pt or model.pt"),
    ("sweep --out {file}", "is a file"),
    ("sweep --steps 0", "--steps"),
    ("sweep --device {nocuda}", "--device"),
]


@pytest.mark.parametrize("line,fragment", CASES, ids=[c[0] for c in CASES])
def test_misuse_is_one_line_exit_2(line, fragment, paths, capsys):
    argv = _argv(line, paths)
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"elbits {argv[0]}: error: "), err
    assert fragment in lines[0], err


def test_unknown_command(capsys):
    assert main(["fly"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("elbits: error: ") and "fly" in err and len(err.splitlines()) == 1


def test_input_error_from_the_library_is_one_line(monkeypatch, capsys):
    # What a loader raises for a corrupt file: printed as the command's one line, its newlines folded.
    def corrupt(_cfg):
        raise InputError("data.npz: not a dSprites archive\n(expected the key 'imgs')")

    monkeypatch.setattr(elbits.train, "train", corrupt)
    assert main(["train", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err == "elbits train: error: data.npz: not a dSprites archive; (expected the key 'imgs')\n"


def test_os_error_on_the_users_folder_is_one_line(monkeypatch, tmp_path, capsys):
    out = tmp_path / "run"

    def disk_full(_cfg):
        raise OSError(28, "No space left on device", str(out / "metrics.jsonl"))

    monkeypatch.setattr(elbits.train, "train", disk_full)
    assert main(["train", "--out", str(out)]) == 2
    assert (
        capsys.readouterr().err == f"elbits train: error: {out / 'metrics.jsonl'}: No space left on device\n"
    )


def test_os_error_elsewhere_keeps_its_traceback(monkeypatch, tmp_path):
    # Not a path the user gave: a bug or a broken installation, which the traceback helps to find.
    def broken(_cfg):
        raise FileNotFoundError(2, "No such file or directory", "/usr/lib/elbits-missing/libfoo.so")

    monkeypatch.setattr(elbits.train, "train", broken)
    with pytest.raises(FileNotFoundError):
        main(["train", "--out", str(tmp_path / "run")])


@pytest.mark.parametrize("where", ["top", "sub"])
def test_debug_shows_the_traceback(monkeypatch, where):
    def bad(_cfg):
        raise InputError("bad setting")

    monkeypatch.setattr(elbits.train, "train", bad)
    argv = ["--debug", "train"] if where == "top" else ["train", "--debug"]
    with pytest.raises(InputError, match="bad setting"):
        main(argv)


def test_real_console_script(tmp_path):
    # The installed `elbits` script (or what it runs, elbits.cli:main, when this checkout is not installed),
    # on this checkout's code.
    # PYTHONPATH only for an uninstalled checkout: site-packages there would go before the standard library
    # (and pythae's requirement, the Python 3.6 `dataclasses` backport, would shadow the real one).
    root = Path(elbits.__file__).parents[1]
    env = dict(os.environ) if root.name == "site-packages" else {**os.environ, "PYTHONPATH": str(root)}
    script = Path(sys.executable).with_name("elbits")
    cmd = (
        [str(script)]
        if script.is_file()
        else [sys.executable, "-c", "import sys; from elbits.cli import main; sys.exit(main())"]
    )
    r = subprocess.run(
        [*cmd, "train", "--steps", "-1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == "elbits train: error: argument --steps: expected a positive integer, got '-1'\n"


_NUMBER_TEXT = st.one_of(
    st.text(max_size=12),
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from(["nan", "-inf", "1e400", "0x10", "1_000", " 7 ", "٣", "-0", "0.0"]),
)


@pytest.mark.parametrize(
    "parse,ok",
    [
        (A.positive_int, lambda v: isinstance(v, int) and v >= 1),
        (A.count_or_all, lambda v: isinstance(v, int) and v >= 0),
        (A.seed, lambda v: isinstance(v, int) and 0 <= v <= A.SEED_MAX),
        (A.positive_float, lambda v: math.isfinite(v) and v > 0),
        (A.nonnegative_float, lambda v: math.isfinite(v) and v >= 0),
        (A.device(), lambda v: v in ("auto", "cpu") or v.startswith(("cpu:", "cuda"))),
    ],
    ids=["positive_int", "count_or_all", "seed", "positive_float", "nonnegative_float", "device"],
)
@given(text=_NUMBER_TEXT)
def test_any_text_is_a_valid_value_or_one_clear_rejection(parse, ok, text):
    # Random text never escapes as another exception (which argparse would print as "invalid value").
    try:
        v = parse(text)
    except argparse.ArgumentTypeError as e:
        assert "\n" not in str(e) and str(e)
    else:
        assert ok(v), (text, v)
