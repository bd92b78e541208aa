"""What the data needs, in bits: exact entropies of factors and image sets, and bounds where it is unknown.

- :mod:`elbits.entropy.factors`: factor, joint, DAG and plug-in entropies, exact H(X) of an image set by
  de-duplication, pixel marginals and total correlation (dSprites, where the answer is known).
- :mod:`elbits.entropy.images`: the bounds table of an image set (:func:`image_bounds`): codecs, log2 N,
  a model's -ELBO, the bits-back codec and I(X;Z), each marked with what it bounds (the entropy of the
  empirical set, or of the distribution behind it).

Every name is re-exported here: ``elbits.entropy.factor_entropy``, ``elbits.entropy.image_bounds``, ...
"""

from .factors import (
    CPT,
    MILLER_MADOW_CAVEAT,
    DagEntropy,
    EmpiricalEntropy,
    ImageCounter,
    MarginalPixelEntropy,
    PixelHistogram,
    PluginEstimate,
    dag_entropy,
    empirical_entropy,
    factor_entropy,
    image_entropies,
    joint_entropy,
    marginal_pixel_entropy,
    plugin_entropy,
    total_correlation,
)
from .images import (
    H_P,
    H_SET,
    NOTES,
    BoundRow,
    ColourBounds,
    ImageBounds,
    check_images,
    colour_bounds,
    image_bounds,
    render_bounds,
)

__all__ = [
    "CPT",
    "H_P",
    "H_SET",
    "MILLER_MADOW_CAVEAT",
    "NOTES",
    "BoundRow",
    "ColourBounds",
    "DagEntropy",
    "EmpiricalEntropy",
    "ImageBounds",
    "ImageCounter",
    "MarginalPixelEntropy",
    "PixelHistogram",
    "PluginEstimate",
    "check_images",
    "colour_bounds",
    "dag_entropy",
    "empirical_entropy",
    "factor_entropy",
    "image_bounds",
    "image_entropies",
    "joint_entropy",
    "marginal_pixel_entropy",
    "plugin_entropy",
    "render_bounds",
    "total_correlation",
]


def __getattr__(name: str):
    # dSprites' factor entropy is a fact of the data set and lives with it (elbits.data); the old name here
    # stays reachable without entropy importing data at load time.
    if name == "dsprites_factor_entropy":
        from ..data.dsprites import dsprites_factor_entropy

        return dsprites_factor_entropy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
