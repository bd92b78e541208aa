"""Users' toolchains: a wheel without libtorch, autocast, torch.compile of a conv VAE."""

import math
import subprocess
import sys

import pytest
import torch

import elbits
from elbits import _C


def test_extension_links_no_torch_library():
    out = subprocess.run(["ldd", _C.__file__], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.skip(f"ldd unavailable: {out.stderr.strip()}")
    deps = out.stdout
    for lib in ("libtorch", "libc10", "libtorch_python", "libgomp", "libiomp"):
        assert lib not in deps, f"elbits._C links {lib}:\n{deps}"


def test_extension_imports_without_torch():
    # The core needs no torch at all: load the .so in a child interpreter that blocks torch.
    code = (
        "import sys, importlib.util\n"
        "sys.modules['torch'] = None\n"
        f"spec = importlib.util.spec_from_file_location('elbits._C', {_C.__file__!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(m.cpu_isa())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


class ConvVAE(torch.nn.Module):
    def __init__(self, z=4):
        super().__init__()
        self.enc = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 4, 2, 1),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Linear(8 * 8 * 8, 2 * z),
        )
        self.dec = torch.nn.Sequential(
            torch.nn.Linear(z, 8 * 8 * 8),
            torch.nn.ReLU(),
            torch.nn.Unflatten(1, (8, 8, 8)),
            torch.nn.ConvTranspose2d(8, 1, 4, 2, 1),
        )

    def forward(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return self.dec(mu), mu, logvar


def _batch():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(8, 1, 16, 16, generator=g) < 0.3).to(torch.float32)


def test_autocast_bfloat16_matches_float32():
    torch.manual_seed(0)
    model, crit = ConvVAE(), elbits.ELBOLoss()
    x = _batch()
    loss32 = crit(*_args(model, x))
    grads32 = torch.autograd.grad(loss32, list(model.parameters()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, mu, logvar = model(x)
        assert logits.dtype == torch.bfloat16  # the decoder ran in low precision
        loss16 = crit(logits, x, mu, logvar)
    assert crit.last.recon.dtype == torch.float32 and loss16.dtype == torch.float32
    grads16 = torch.autograd.grad(loss16, list(model.parameters()))
    # Stated tolerance: bf16 keeps 8 mantissa bits, so the loss agrees to 1% and each
    # parameter's gradient to 5% in relative L2 norm (elementwise, small entries differ more).
    assert loss16.item() == pytest.approx(loss32.item(), rel=1e-2)
    for g16, g32 in zip(grads16, grads32):
        assert g16.dtype == torch.float32
        assert ((g16 - g32).norm() / g32.norm()).item() < 0.05


def _args(model, x):
    logits, mu, logvar = model(x)
    return logits, x, mu, logvar


def test_compile_conv_vae_fullgraph_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model, crit = ConvVAE(), elbits.ELBOLoss(beta=4.0)
    x = _batch()

    def step(x):
        return crit(*_args(model, x))

    eager = step(x)
    g_eager = torch.autograd.grad(eager, list(model.parameters()))
    compiled = torch.compile(step, fullgraph=True)(x)
    g_comp = torch.autograd.grad(compiled, list(model.parameters()))
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_comp, g_eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_bench_cli_json(capsys):
    import json

    from elbits.cli import main

    assert main(["bench", "bernoulli-256", "--rounds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    impls = {r["impl"]: r for r in out["results"]}
    assert set(impls) == {"fused", "eager", "compile"}
    for r in impls.values():
        for key in ("median_ms", "allocated_mb", "gb_per_s", "vs_compile", "vs_eager"):
            # fields present and sane; no timing relations, which a busy machine may break
            assert isinstance(r[key], float) and math.isfinite(r[key]), (key, r)
        for key in ("median_ms", "gb_per_s", "vs_compile", "vs_eager"):
            assert r[key] > 0, (key, r)
        assert r["allocated_mb"] >= 0, r
        assert r["kernel_ms"] is None, r  # GPU kernel time exists only on a GPU
    assert out["machine"]["elbits_cpu_isa"] and out["machine"]["device"] == "cpu"
