"""Device parametrisation: every likelihood test that runs on a device runs on ``cpu`` and ``cuda``.

The ``cuda`` variants skip without a CUDA build of elbits and a visible GPU, so a CPU machine runs
(and counts) the CPU variants only.
"""

import pytest
import torch

from elbits._core import core

needs_gpu = pytest.mark.skipif(
    not (core.has_cuda and torch.cuda.is_available()), reason="needs a CUDA build of elbits and a GPU"
)
DEVICES = ["cpu", pytest.param("cuda", marks=needs_gpu)]
