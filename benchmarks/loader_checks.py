"""What the file checks cost: checkpoint save/load behind its sha256, and opening a dSprites npz with its
checks.

    PYTHONPATH=python python benchmarks/loader_checks.py [--images 65536]

Prints the best of a few runs (seconds or milliseconds) next to the unchecked numpy / torch read of the same
bytes. Figures in docs/reliability-files.md.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from elbits.data import dsprites as ds
from elbits.models import BurgessVAE
from elbits.train.checkpoint import load_checkpoint, save_checkpoint


def best(f, n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def checkpoint_figures(tmp: Path) -> None:
    torch.manual_seed(0)
    model = BurgessVAE(10)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.rand(2, 1, 64, 64))[0].sum().backward()
    opt.step()  # Adam moments: the optimiser state a real checkpoint carries
    state = {
        "step": 1,
        "samples_seen": 1,
        "world_size": 1,
        "config": {},
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "criterion": {},
        "meters": [{}],
        "loss_windows": [[0.0, 0.0]],
    }
    p = save_checkpoint(tmp / "checkpoint.pt", state)
    data = p.read_bytes()
    payload = data[data.index(b"\n") + 1 :]
    save = best(lambda: save_checkpoint(p, state))
    load = best(lambda: load_checkpoint(p))
    sha = best(lambda: hashlib.sha256(payload).digest())
    bare = best(lambda: torch.load(io.BytesIO(payload), weights_only=True))
    print(
        f"checkpoint {len(data) / 1e6:.2f} MB: save {save * 1e3:.1f} ms, load_checkpoint {load * 1e3:.1f} ms "
        f"(sha256 {sha * 1e3:.1f} ms of it); bare torch.load {bare * 1e3:.1f} ms"
    )


def npz_figures(tmp: Path, n: int) -> None:
    classes = ds.index_to_classes(np.arange(n) * (ds.NUM_IMAGES // n))
    imgs = ds.render(classes).numpy()
    for compressed in (False, True):
        q = tmp / f"dsprites{int(compressed)}.npz"
        (np.savez_compressed if compressed else np.savez)(q, imgs=imgs, latents_classes=classes)

        def unchecked(q=q):
            with np.load(q, allow_pickle=False) as z:
                z["imgs"], z["latents_classes"]

        ours, bare = best(lambda q=q: ds.NpzDSprites(q), 3), best(unchecked, 3)
        print(
            f"npz of {n} images, {'deflated' if compressed else 'stored'} ({q.stat().st_size / 1e6:.0f} MB): "
            f"NpzDSprites {ours:.3f} s ({n / ours / 1e3:.0f}k images/s); np.load of both arrays {bare:.3f} s"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=65536, help="images in the synthetic npz")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint_figures(Path(tmp))
        npz_figures(Path(tmp), args.images)


if __name__ == "__main__":
    main()
