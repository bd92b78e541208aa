"""TrainConfig: every setting of a training run, as plain values (saved in each checkpoint)."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Optional

from ..data.images import PREPROCESS
from ..errors import InputError
from ..models.colour import COLOUR_LIKELIHOODS
from .decoders import check_choice

CONTROLLERS = ("fixed", "capacity", "geco", "target-rate")
#: Training sets: binary dSprites (the default), and the 8-bit colour sets (an image folder is ``images``).
DATA_SOURCES = ("dsprites", "colour-sprites", "photos", "images")
COLOUR_DATA = DATA_SOURCES[1:]
SIZES = (32, 64)


@dataclass
class TrainConfig:
    """Settings of :func:`elbits.train.train`. Units are in the names: ``*_bits`` per sample.

    Data
      - ``data``: ``dsprites`` (binary 64x64, the default), or 8-bit colour data: ``colour-sprites``
        (:mod:`elbits.data.colour_sprites`, known H(X) = log2 N), ``photos`` (scikit-image's photographs cut
        into patches, :mod:`elbits.data.photos`) or ``images`` (the folder, image file or uint8 ``.npy`` /
        ``.npz`` ``images``, read by :class:`elbits.data.images.ImageFolder` with ``preprocess``, one of its
        :data:`~elbits.data.images.PREPROCESS`; None: its default, ``celeba64`` for image files).
      - ``size``: side of the colour images, 32 or 64 (``None``: 32 for ``photos``, else 64; dSprites is 64).
      - ``npz``: path of the real dSprites npz; ``None`` renders the procedural grid.
      - ``train_size``: images in the training set, drawn without replacement from the whole
        grid with ``data_seed`` (``None``: all 737,280; rendering them all takes ~30 s). For colour data,
        at most this many (a set no larger is used whole).

    Optimisation
      - ``steps`` (optimiser steps), ``batch_size`` (per process), ``lr``, ``weight_decay`` (AdamW),
        ``seed`` (model init, data order, z noise), ``z_dim``.

    Controller (``controller``: one of ``fixed``, ``capacity``, ``geco``, ``target-rate``)
      - ``fixed``: ``beta`` (nats of distortion per nat of rate).
      - ``capacity``: C rises to ``capacity_bits`` over ``capacity_steps`` (default: ``steps``), ``gamma``.
      - ``geco``: distortion target ``target_bits``; ``controller_lr``.
      - ``target-rate``: rate target ``target_bits`` (default: the budget H(X) of the training set);
        ``controller_lr``; starts at ``beta``.

    Likelihood (``likelihood``: one of :func:`~elbits.train.decoders.training_likelihoods`)
      - ``decoder_output``: what the model's decoder returns, ``logits``, ``probs``, ``mean`` or ``params``
        (:mod:`elbits.train.decoders` has each likelihood's layout); ``None``: the default model's, or the
        model's own ``decoder_output`` attribute. A model of your own must declare it.
      - ``mixture_components``: K of ``logistic_mixture``; ``scale``: the fixed sigma / b of a ``gaussian`` /
        ``laplace`` decoder that returns its ``mean`` (units of the images in [0, 1]); ``discretize``: their
        code length of the 8-bit levels instead of the density.

    Output
      - ``out_dir``: ``metrics.jsonl``, ``checkpoint.pt`` and (when tensorboard is installed) ``tb/``.
      - ``log_every``: steps between metric records (each the mean over the steps since the last one).
      - ``checkpoint_every``: steps between checkpoints (0: only at the end).
      - ``resume``: continue where a run stopped, from this checkpoint file or folder (``"auto"``:
        ``out_dir/checkpoint.pt``). ``steps``, ``lr``, ``weight_decay`` and a ``fixed`` controller's ``beta``
        may change (applied from the resumed step on); any other setting that differs is refused.
      - ``overwrite``: start afresh in an ``out_dir`` that holds a run (its metrics, checkpoint and final
        figures are replaced); without it, and without ``resume``, such a folder is refused.
      - ``eval_at_end``: one pass over the training set after the last step (z sampled, no update), written
        to ``final.json``: the figures to quote; over ``eval_limit`` evenly spaced images of a larger set.
      - ``progress``: a tqdm bar with the running rate and distortion in bits; ``tensorboard``: scalars under
        ``out_dir/tb`` when tensorboard is installed; ``device``: ``auto`` (CUDA when present) or a torch
        device.
    """

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    z_dim: int = 10
    npz: Optional[str] = None
    train_size: Optional[int] = 32768
    data_seed: int = 0
    data: str = "dsprites"
    images: Optional[str] = None
    size: Optional[int] = None
    preprocess: Optional[str] = None
    controller: str = "fixed"
    beta: float = 1.0
    target_bits: Optional[float] = None
    capacity_bits: float = 25.0
    capacity_steps: Optional[int] = None
    gamma: float = 1000.0
    controller_lr: float = 1e-2
    out_dir: str = "elbits-run"
    log_every: int = 50
    checkpoint_every: int = 0
    resume: Optional[str] = None
    overwrite: bool = False
    eval_at_end: bool = True
    eval_limit: Optional[int] = 65536
    progress: bool = True
    tensorboard: bool = True
    device: str = "auto"
    likelihood: str = "bernoulli"
    decoder_output: Optional[str] = None
    mixture_components: int = 5
    scale: Optional[float] = None
    discretize: bool = False

    def __post_init__(self) -> None:
        if self.controller not in CONTROLLERS:
            raise InputError(f"controller must be one of {list(CONTROLLERS)}, got {self.controller!r}")
        for name in ("steps", "batch_size", "log_every", "z_dim", "mixture_components"):
            _integer(name, getattr(self, name), 1)
        for name in ("seed", "data_seed", "checkpoint_every"):
            _integer(name, getattr(self, name), 0)
        for name in ("train_size", "capacity_steps", "eval_limit"):
            if getattr(self, name) is not None:
                _integer(name, getattr(self, name), 1)
        for name in ("lr", "capacity_bits", "gamma", "controller_lr"):
            _number(name, getattr(self, name), positive=True)
        for name in ("weight_decay", "beta"):
            _number(name, getattr(self, name), positive=False)
        for name in ("target_bits", "scale"):
            if getattr(self, name) is not None:
                _number(name, getattr(self, name), positive=True)
        for name in ("eval_at_end", "progress", "tensorboard", "overwrite", "discretize"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.controller == "geco" and self.target_bits is None:
            raise InputError("controller 'geco' needs target_bits (the distortion to reach, bits per sample)")
        if self.target_bits is not None and self.controller not in ("geco", "target-rate"):
            raise InputError(
                f"target_bits is used by controllers 'geco' and 'target-rate', not {self.controller!r}"
            )
        if self.capacity_steps is not None and self.controller != "capacity":
            raise InputError(f"capacity_steps is used by controller 'capacity', not {self.controller!r}")
        if self.controller == "target-rate" and self.beta == 0:
            raise InputError("controller 'target-rate' scales beta up and down from beta: expected beta > 0")
        if self.resume is not None and self.overwrite:
            raise InputError(
                "resume continues the run in out_dir and overwrite replaces it: give one of them"
            )
        check_choice(self.likelihood, self.decoder_output, self.scale, self.discretize)
        self._check_data()

    def _check_data(self) -> None:
        if self.data not in DATA_SOURCES:
            raise InputError(f"data must be one of {list(DATA_SOURCES)}, got {self.data!r}")
        if self.preprocess is not None:
            if self.preprocess not in PREPROCESS:
                raise InputError(f"preprocess must be one of {list(PREPROCESS)}, got {self.preprocess!r}")
        if self.data == "images" and not self.images:
            raise InputError("data 'images' needs images (the folder of images to train on)")
        if self.images is not None and self.data != "images":
            raise InputError(f"images (a folder) and data {self.data!r} name two training sets: give one")
        if self.preprocess is not None and self.data != "images":
            raise InputError(f"preprocess is for data 'images' (a folder), not {self.data!r}")
        if self.size is not None:
            _integer("size", self.size, 1)
            if self.size not in SIZES:
                raise InputError(f"size must be one of {list(SIZES)} (pixels per side), got {self.size!r}")
        if self.data == "dsprites":
            if self.size not in (None, 64):
                raise InputError(f"dSprites images are 64x64: size {self.size} is for colour data")
            return
        if self.npz is not None:
            raise InputError(f"npz is the real dSprites file, not a setting of data {self.data!r}")
        if self.likelihood not in COLOUR_LIKELIHOODS:
            raise InputError(
                f"likelihood {self.likelihood!r} does not model 8-bit colour data ({self.data!r}): "
                f"expected one of {list(COLOUR_LIKELIHOODS)}"
            )

    @property
    def colour(self) -> bool:
        """Whether the run trains on 8-bit colour data (anything but dSprites)."""
        return self.data != "dsprites"

    @property
    def image_size(self) -> int:
        """Side of the training images in pixels: ``size``, or the data's default (32 for photo patches)."""
        if self.size is not None:
            return self.size
        return 32 if self.data == "photos" else 64

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A config from :meth:`to_dict` output (a checkpoint's); settings it lacks take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _integer(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise InputError(f"{name} must be an integer >= {least}, got {value!r}")


def _number(name: str, value: Any, positive: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        raise InputError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
