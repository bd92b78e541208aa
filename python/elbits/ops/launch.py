"""How an op body calls the compiled core: the CPU thread count and the CUDA stream."""

import torch


def num_threads() -> int:
    """The CPU kernels follow torch's intra-op thread setting."""
    return torch.get_num_threads()


def cuda_stream(t: torch.Tensor) -> int:
    """torch's current stream on ``t``'s device: CUDA kernels run in order with torch's own work."""
    return torch.cuda.current_stream(t.device).cuda_stream
