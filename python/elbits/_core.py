"""Loads the compiled core, or fails with how to build it (never a silent fallback)."""

from __future__ import annotations

try:
    from . import _C as core
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "elbits' compiled core (elbits._C) is missing or failed to load: "
        f"{exc}. Build and install the package with `pip install .` from the "
        "repository (needs a C++17 compiler and CMake >= 3.18), or `make dev` for an "
        "in-place build. elbits.reference has plain-PyTorch versions of the terms."
    ) from exc

__all__ = ["core"]
