import ctypes
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

# Deterministic in CI (same examples every run, no example database), a little
# wider when run by hand with HYPOTHESIS_PROFILE=dev.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


_libc = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


@pytest.fixture(autouse=True)
def _default_floating_point_environment():
    yield
    # torch 2.4's inductor links its CPU kernels with -ffast-math, whose start-up code turns on
    # flush-to-zero for the process when they load (docs/compatibility.md). Put the default back so
    # that later tests see IEEE arithmetic (hypothesis refuses to draw floats while subnormals flush).
    if _libc is not None and sys.float_info.min / 2 == 0.0:
        _libc.fesetenv(ctypes.c_void_p(-1))  # FE_DFL_ENV
