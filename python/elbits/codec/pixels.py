"""Pushing images onto an ANS stack, and popping them off, under a decoder's likelihood.

The tables come from :func:`elbits.likelihood_logprobs`, so an image costs its NLL in bits up to the
coder's quantisation of the probabilities (24-bit fixed point; each level keeps at least the smallest
representable probability). Channels are coded as *stages*: all channels at once for likelihoods whose
subpixels are independent given z, one stage per channel for the 3-channel logistic mixture, whose G and
B tables depend on the R (and G) levels. Within a step a stage is pushed for every image before the next
(earlier) stage, so that the decoder pops stage 0 of every image, then knows the context for stage 1.
"""

from __future__ import annotations

import constriction
import numpy as np
import torch

from ..logprobs import likelihood_logprobs

_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)
_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


def stages(likelihood: str, channels: int) -> list[slice]:
    """The channel slices coded one after another (decoding order)."""
    if likelihood == "logistic_mixture" and channels == 3:
        return [slice(c, c + 1) for c in range(channels)]
    return [slice(0, channels)]


#: elements of decoder output whose tables are built at once (the tables are 256 levels per subpixel in
#: float64, and a mixture's are per component before mixing): bounds memory, never changes a table
CHUNK_PARAMS = 1 << 16


def chunks(batch: int, params_per_image: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` runs of the ``batch`` images whose tables are built together. Encoder and decoder cut
    a step the same way, so they compute the same tables with the same instructions."""
    step = max(1, CHUNK_PARAMS // max(params_per_image, 1))
    return [(lo, min(lo + step, batch)) for lo in range(0, batch, step)]


def tables(params: torch.Tensor, likelihood: str, context: torch.Tensor, stage: slice) -> np.ndarray:
    """``[B, n, 256]`` float64 probabilities of the subpixels of ``stage`` (channels), per image; for
    Bernoulli ``[B, n]`` probabilities of a 1. ``context`` holds the levels known so far ``[B, C, H, W]``
    (its shape is the image shape the tables are laid out in)."""
    batch, channels = context.shape[:2]
    if likelihood == "bernoulli":
        # the coder takes P(1) = sigmoid(logit) itself: one pass, not both levels' logs and an exp
        p1 = torch.sigmoid(params.detach().to(torch.float64))
        return np.ascontiguousarray(p1.reshape(batch, channels, -1)[:, stage].reshape(batch, -1).numpy())
    lp = likelihood_logprobs(
        params, likelihood, context=context if likelihood == "logistic_mixture" else None
    )
    lp = lp.reshape(batch, channels, -1, lp.shape[-1])[:, stage]
    # C order: constriction 0.5 reads a strided table's memory as if it were C-ordered (silently wrong
    # probabilities), and exp keeps the log-probs' strides
    return np.ascontiguousarray(lp.exp().reshape(batch, -1, lp.shape[-1]).numpy())


#: the coder's smallest probability (24-bit fixed point); no symbol costs more than -log2 of it
_FLOOR = 2.0**-24


def push(coder, table: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Encode the levels ``symbols`` ``[B, n]`` (one stage of B images, flattened) with their ``table``
    (``[B, n, 256]``, or ``[B, n]`` for Bernoulli), last image first. The bits each image's levels took,
    ``[B]`` float64, exact: one coder call per image costs no more than one for all (the coder's work is
    per symbol) and needs no second pass over the table to split the cost."""
    sym = np.ascontiguousarray(symbols, dtype=np.int32)
    model = _BERNOULLI if table.ndim == 2 else _CATEGORICAL
    bits = np.zeros(len(sym), dtype=np.float64)
    for i in reversed(range(len(sym))):
        before = coder.num_valid_bits()
        coder.encode_reverse(sym[i], model, table[i])
        bits[i] = coder.num_valid_bits() - before
    return bits


def pop(coder, table: np.ndarray) -> np.ndarray:
    """The levels (int32 ``[B, n]``) of one stage of B images, pushed by :func:`push` with ``table``."""
    if table.ndim == 2:
        return coder.decode(_BERNOULLI, table.reshape(-1)).reshape(table.shape)
    return coder.decode(_CATEGORICAL, table.reshape(-1, table.shape[-1])).reshape(table.shape[:2])
