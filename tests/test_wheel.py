"""`pip wheel .` gives a wheel that links no libtorch and works in a fresh venv with the pinned torch.

Slow (builds the extension and a venv): run with `pytest -m slow tests/test_wheel.py`;
`make test` runs it after the default suite.
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")


def run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.mark.slow
def test_wheel_links_no_torch_and_works_in_a_fresh_venv(tmp_path):
    if not (ROOT / "pyproject.toml").exists():
        pytest.skip("needs the source tree")
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)])
    (wheel,) = wheels.glob("elbits-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        (so_name,) = [n for n in zf.namelist() if n.startswith("elbits/_C") and n.endswith(".so")]
        so = tmp_path / "_C.so"
        so.write_bytes(zf.read(so_name))
    needed = run(["readelf", "-d", str(so)])
    assert "NEEDED" in needed
    for lib in ("libtorch", "libc10", "libgomp", "libiomp", "libcudart"):
        assert lib not in needed, f"the wheel's extension needs {lib}:\n{needed}"

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    run([py, "-m", "pip", "install", "-q", TORCH_SPEC])
    run([py, "-m", "pip", "install", "-q", str(wheel)])
    smoke = (
        "import torch, elbits\n"
        "x = torch.randn(4, 1, 8, 8, requires_grad=True); t = (torch.rand(4, 1, 8, 8) < .5)\n"
        "mu = torch.randn(4, 3); lv = torch.zeros(4, 3)\n"
        "terms = elbits.elbo_terms(x, t, mu, lv)\n"
        "ref = elbits.reference.elbo_terms(x, t, mu, lv)\n"
        "assert torch.allclose(terms.recon.double(), ref.recon, rtol=1e-5)\n"
        "terms.recon.sum().backward(); assert x.grad is not None\n"
        "print('ok', elbits._C.cpu_isa())\n"
    )
    assert "ok" in run([py, "-c", smoke], cwd=tmp_path)
