"""The decoder output each likelihood reads: its declared kinds and its channels per pixel.

Below models and training, so that a model can size its last layer for a likelihood without importing the
training package (:class:`elbits.train.decoders.Head` turns a layout into the likelihood's arguments).
"""

from __future__ import annotations

from ..errors import InputError

DECODER_OUTPUTS = ("logits", "probs", "mean", "params")
LEVELS = 256
# The kinds of output each likelihood reads; the first is the default model's (gaussian/laplace: "mean" when
# a fixed scale is given, else "params" with a learned per-subpixel log-scale).
KINDS: dict[str, tuple[str, ...]] = {
    "bernoulli": ("logits", "probs"),
    "continuous_bernoulli": ("logits",),
    "categorical256": ("logits",),
    "categorical256_inplace": ("logits",),
    "logistic_mixture": ("params",),
    "discretized_gaussian": ("params",),
    "gaussian": ("params", "mean"),
    "laplace": ("params", "mean"),
}
EIGHT_BIT = ("categorical256", "categorical256_inplace", "logistic_mixture", "discretized_gaussian")
CONTINUOUS = ("gaussian", "laplace")


def out_channels(likelihood: str, kind: str, channels: int, components: int = 5) -> int:
    """Channels per pixel of a decoder output of ``kind`` for ``likelihood`` on ``channels``-channel images
    (``components``: K of a logistic mixture): ``256 C`` for ``categorical256``, ``10K`` (RGB) / ``3K``
    (grey) for ``logistic_mixture``, ``2C`` for ``discretized_gaussian`` and for gaussian / laplace
    ``"params"`` (means, then log-scales), else ``C``."""
    c = channels
    if likelihood.startswith("categorical256"):
        return LEVELS * c
    if likelihood == "logistic_mixture":
        if c not in (1, 3):
            raise InputError(f"likelihood 'logistic_mixture' models 1- or 3-channel images; these have {c}")
        return (10 if c == 3 else 3) * components
    if likelihood == "discretized_gaussian" or (likelihood in CONTINUOUS and kind == "params"):
        return 2 * c
    return c
