"""Lossless compression with a VAE by bits-back coding (BB-ANS) on the ``constriction`` ANS coder.

:class:`BitsBackCodec` turns a trained model into a codec whose files cost the model's negative ELBO in
bits per image (plus a fixed start-up and header); see :mod:`elbits.codec.bitsback` for the scheme and
:mod:`elbits.codec.container` for the file format.
"""

from .bitsback import BitsBackCodec, CodecStats, plan_step
from .container import MAGIC, VERSION, model_fingerprint

__all__ = ["MAGIC", "VERSION", "BitsBackCodec", "CodecStats", "model_fingerprint", "plan_step"]
