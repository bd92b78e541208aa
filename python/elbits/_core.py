"""Loads the compiled core, or fails with how to build it (never a silent fallback).

After loading, hands the core torch's own OpenMP runtime so that the CPU kernels'
parallel loops run on torch's thread team instead of competing with it.
"""

from __future__ import annotations

import os

import torch  # noqa: F401  (loads torch's OpenMP runtime before we look for it)

try:
    from . import _C as core
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "elbits' compiled core (elbits._C) is missing or failed to load: "
        f"{exc}. Build and install the package with `pip install .` from the "
        "repository (needs a C++17 compiler and CMake >= 3.18), or `make dev` for an "
        "in-place build. elbits.reference has plain-PyTorch versions of the terms."
    ) from exc


def _loaded_openmp_runtime() -> str | None:
    """Path of the OpenMP runtime mapped into this process (torch's), if any (Linux only)."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                name = os.path.basename(path)
                if name.startswith(("libgomp", "libiomp5")) and ".so" in name:
                    return path
    except OSError:
        return None
    return None


def _attach_openmp() -> None:
    if os.environ.get("ELBITS_THREAD_POOL") == "own":  # opt out, for comparisons
        return
    path = _loaded_openmp_runtime()
    if path is not None:
        core.use_openmp_runtime(path)


_attach_openmp()

__all__ = ["core"]
