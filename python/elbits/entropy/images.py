"""Bounds on the entropy of an image set, side by side, in bits per image and bits per dimension.

Two entropies are in play, and every row says which one it bounds:

- **H(set)**: the entropy of the empirical distribution, x uniform over the N listed images (duplicates
  counted). It is known exactly (de-duplication) and is at most log2 N.
- **H(p)**: the entropy of the distribution p the images were drawn from (for CelebA crops, unknown). Only a
  code or a model that was not fitted to these very images bounds it; a model trained on them can memorise
  the set and go below H(p), down to H(set).

The rules, for a discrete likelihood (a probability mass over levels; densities are refused):

- ``raw`` (log2 levels per subpixel) and per-image lossless codecs (PNG, WebP, JPEG-XL) are fixed codes: their
  mean length over the set is the expected length under x uniform over the set, so >= H(set) (Kraft; the
  container supplies each file's length), and in expectation over sets drawn from p it is >= H(p).
- whole-set codecs (lzma, bz2, zstd over the concatenated bytes) and the bits-back codec code the set as one
  sequence: bits / N >= H(p) in expectation for i.i.d. images; they bound nothing about H(set) (a sequence
  code may exploit this one ordering; an enumerated set like colour sprites is not an i.i.d. sample at all).
- the model's -ELBO (mean over the images) >= its cross-entropy on the set >= H(set), always; >= H(p) in
  expectation on images the model was not trained on.
- I(X;Z) from the ELBO surgery (x uniform over the set) <= H(set) <= log2 N; for images sampled from p the
  estimator is in expectation a lower bound on the encoder's I(X;Z) under p, which is <= H(p).
"""

from __future__ import annotations

import io
import lzma
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Union

import numpy as np
import torch
from PIL import Image

from ..analysis import elbo_surgery
from ..codec import BitsBackCodec
from ..codec import baselines as B
from ..errors import InputError
from ..units import Quantity
from .factors import empirical_entropy

#: The two entropies a row can bound (see the module docstring).
H_SET = "H(set)"
H_P = "H(p)"

_SIDES = {"exact": "=", "upper": "≥", "lower": "≤"}

NOTES: tuple[str, ...] = (
    "H(set): entropy of x uniform over the N listed images (exact, <= log2 N). "
    "H(p): entropy of the distribution the images were drawn from.",
    "'>= H' rows are upper bounds, '<= H' rows lower bounds; 'in exp.' holds in expectation over sets drawn "
    "from p; 'held-out': only on images the model was not trained on (training images can be memorised, "
    "down to H(set)).",
    "Per-image codecs pay a file header per image; whole-set codecs and bits-back code the set as one "
    "sequence and bound H(p) per image for i.i.d. images only, never H(set).",
)

# what baselines() names each codec -> (key, what it bounds)
_BASELINES = {
    "PNG (Pillow)": ("png", f"{H_SET}; {H_P} in exp."),
    "WebP lossless": ("webp", f"{H_SET}; {H_P} in exp."),
    "JPEG-XL lossless": ("jpegxl", f"{H_SET}; {H_P} in exp."),
    "lzma (whole set)": ("lzma", f"{H_P} in exp. (i.i.d.)"),
    "bz2 (whole set)": ("bz2", f"{H_P} in exp. (i.i.d.)"),
    "zstd (whole set)": ("zstd", f"{H_P} in exp. (i.i.d.)"),
}


@dataclass(frozen=True)
class BoundRow:
    """One figure of an :class:`ImageBounds` table, bits per image and bits per dimension (subpixel).

    ``key``: a stable name (``png``, ``nelbo``, ``mi``, ...); ``side``: ``exact``, ``upper`` (the figure is >=
    the entropies in ``of``) or ``lower`` (<=); ``of``: which entropy, in words (:data:`H_SET`, :data:`H_P`);
    ``group``: ``data``, ``codec`` (per image), ``set codec`` (whole set) or ``model``; ``stderr_bits``: the
    estimate's standard error per image where it is a Monte Carlo figure.
    """

    key: str
    name: str
    bits_per_image: float
    bits_per_dim: float
    side: str
    of: str
    group: str
    stderr_bits: Optional[float] = None

    @property
    def relation(self) -> str:
        """``"≥ H(set); H(p) in exp."``: the figure's relation to the entropies it bounds."""
        return f"{_SIDES[self.side]} {self.of}"


@dataclass(frozen=True)
class ImageBounds:
    """The bounds table of an image set: :attr:`rows` (:class:`BoundRow`), what was skipped and why
    (:attr:`skipped`), and the set's size. Render with :meth:`to_markdown` or :meth:`to_text`."""

    rows: tuple[BoundRow, ...]
    images: int
    distinct: int
    shape: tuple[int, ...]
    levels: int
    source: str = ""
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = NOTES
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dims(self) -> int:
        """Subpixels per image (C x H x W): the 'dim' of bits/dim."""
        return int(np.prod(self.shape))

    def row(self, key: str) -> BoundRow:
        """The row named ``key`` (``KeyError`` listing the keys present otherwise)."""
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(f"no row {key!r}; rows: {', '.join(r.key for r in self.rows)}")

    def __contains__(self, key: object) -> bool:
        return any(r.key == key for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for JSON): the set's size and shape, every row with its relation, the notes."""
        return {
            "source": self.source,
            "images": self.images,
            "distinct": self.distinct,
            "shape": list(self.shape),
            "dims": self.dims,
            "levels": self.levels,
            "rows": [{**asdict(r), "relation": r.relation} for r in self.rows],
            "skipped": list(self.skipped),
            "notes": list(self.notes),
            **({"extra": self.extra} if self.extra else {}),
        }

    def _header(self) -> str:
        shape = "x".join(map(str, self.shape))
        src = f"{self.source}: " if self.source else ""
        return (
            f"{src}{self.images} images [{shape}] ({self.dims} dims, {self.levels} levels), "
            f"{self.distinct} distinct"
        )

    def _value(self, r: BoundRow, per_dim: bool) -> str:
        scale = self.dims if per_dim else 1
        # bits/dim of small sets run to 1e-4: significant digits there, fixed decimals elsewhere
        fmt = (lambda v: f"{v:.4f}" if abs(v) >= 1 else f"{v:.4g}") if per_dim else (lambda v: f"{v:.2f}")
        v = fmt(r.bits_per_image / scale)
        if r.stderr_bits is None or not math.isfinite(r.stderr_bits):
            return v
        return f"{v} ± {fmt(r.stderr_bits / scale)}"

    def to_markdown(self) -> str:
        """A markdown table (bound, bits/image, bits/dim, relation) with the notes below it."""
        lines = [
            self._header(),
            "",
            "| bound | bits/image | bits/dim | bounds |",
            "|---|---:|---:|---|",
        ]
        for r in self.rows:
            lines.append(f"| {r.name} | {self._value(r, False)} | {self._value(r, True)} | {r.relation} |")
        lines.append("")
        lines += [f"- {n}" for n in (*self.notes, *(f"skipped: {s}" for s in self.skipped))]
        return "\n".join(lines)

    def to_text(self) -> str:
        """The same table in fixed-width columns for a terminal."""
        width = max(len(r.name) for r in self.rows) + 2
        lines = [self._header(), f"{'bound':<{width}}{'bits/image':>18}{'bits/dim':>11}   bounds"]
        for r in self.rows:
            lines.append(
                f"{r.name:<{width}}{self._value(r, False):>18}{self._value(r, True):>11}   {r.relation}"
            )
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"skipped: {s}" for s in self.skipped]
        return "\n".join(lines)


def check_images(images: Any) -> torch.Tensor:
    """``images`` as uint8 ``[N, C, H, W]`` (``[N, H, W]`` gets C = 1); :class:`InputError` for an empty set,
    float or out-of-range values, or another shape."""
    x = torch.from_numpy(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or x.shape[0] == 0 or x[0].numel() == 0:
        raise InputError(f"images must be [N, C, H, W] (or [N, H, W]) with N >= 1, got {list(x.shape)}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise InputError(f"images must hold integer levels 0..255 (uint8), got {x.dtype}")
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi > 255:
        raise InputError(f"image levels must be in 0..255, got {lo}..{hi}")
    return x.detach().to(torch.uint8).cpu().contiguous()


def _row(key: str, name: str, bits: float, dims: int, side: str, of: str, group: str, se=None) -> BoundRow:
    return BoundRow(key, name, float(bits), float(bits) / dims, side, of, group, se)


def _posteriors(model: Any, to_input: Callable, x: torch.Tensor, batch: int):
    mus, logvars = [], []
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.inference_mode():
            for chunk in x.split(batch):
                mu, logvar = model.encode(to_input(chunk))
                mus.append(mu.double())
                logvars.append(logvar.double())
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
    return torch.cat(mus), torch.cat(logvars)


def image_bounds(
    images: Any,
    *,
    model: Any = None,
    likelihood: Optional[str] = None,
    codec: bool = True,
    codec_images: Optional[int] = None,
    baselines: bool = True,
    exact_bits: Optional[float] = None,
    exact_name: str = "exact H(p)",
    elbo_samples: int = 4,
    surgery_points: Optional[int] = 2048,
    surgery_samples: int = 4,
    to_input: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    batch: int = 256,
    seed: int = 0,
    source: str = "",
) -> ImageBounds:
    """The bounds table of ``images`` (uint8 levels ``[N, C, H, W]``), bits per image and per dim.

    Always: H(set) exact, log2 N, log2 of the number of distinct images, the raw log2(levels) bits per
    subpixel. ``baselines``: PNG, WebP and JPEG-XL lossless per image and lzma, bz2, zstd over the set
    (:func:`elbits.codec.baselines.baselines`; WebP, JPEG-XL and zstd need ``imagecodecs``, else they are
    listed in :attr:`ImageBounds.skipped`). ``exact_bits``: a known H(p) (colour sprites: log2 N), shown as
    ``exact_name``.

    With a ``model`` (``encode(x) -> (mu, logvar)``, ``decode(z) -> likelihood parameters``) and its discrete
    ``likelihood``: the -ELBO (KL plus the NLL over ``elbo_samples`` posterior draws, in the bits-back
    codec's own float64 arithmetic), I(X;Z) of the ELBO surgery (:func:`elbits.analysis.elbo_surgery` over
    ``surgery_points`` x ``surgery_samples`` draws), and with ``codec`` the bits the
    :class:`~elbits.codec.BitsBackCodec` actually spends (net per image, and the whole file), on
    ``codec_images`` evenly spaced images when given (the codec runs about an image per 0.1-1 s on a CPU).
    ``to_input`` maps uint8 images to the encoder's input (default: the codec's,
    :func:`elbits.codec.bitsback.default_input`). A model that cannot take the images' shape raises
    :class:`InputError`.
    """
    x = check_images(images)
    n = int(x.shape[0])
    shape = tuple(int(s) for s in x.shape[1:])
    dims = int(np.prod(shape))
    binary = int(x.max()) <= 1
    levels = 2 if binary else 256
    emp = empirical_entropy(x.numpy())
    rows: list[BoundRow] = []
    skipped: list[str] = []
    if exact_bits is not None:
        rows.append(_row("exact", exact_name, exact_bits, dims, "exact", H_P, "data"))
    rows += [
        _row("set", "H(set): x uniform over the images", emp.entropy.bits, dims, "exact", H_SET, "data"),
        _row("log2_distinct", "log2 distinct images", math.log2(emp.distinct), dims, "upper", H_SET, "data"),
        _row("log2_n", "log2 N (what a model can memorise)", math.log2(n), dims, "upper", H_SET, "data"),
        _row(
            "raw",
            f"raw {math.log2(levels):g} bits/dim",
            math.log2(levels) * dims,
            dims,
            "upper",
            f"{H_SET}, {H_P}",
            "data",
        ),
    ]
    if baselines:
        for b in B.baselines(x.numpy(), binary=binary):
            key, of = _BASELINES.get(b.name, (b.name, f"{H_P} in exp."))
            group = "codec" if b.per_file else "set codec"
            rows.append(_row(key, b.name, b.bits_per_image(n), dims, "upper", of, group))
        if B.imagecodecs is None:
            skipped.append(
                "WebP, JPEG-XL and zstd: imagecodecs is not installed (pip install elbits[compare])"
            )
    extra: dict[str, Any] = {}
    if model is not None:
        rows += _model_rows(
            model, likelihood, x, dims, codec, codec_images, elbo_samples, surgery_points,
            surgery_samples, to_input, batch, seed, extra,
        )  # fmt: skip
    elif likelihood is not None:
        raise InputError("a likelihood was given without a model")
    return ImageBounds(tuple(rows), n, emp.distinct, shape, levels, source, tuple(skipped), NOTES, extra)


def _model_rows(
    model: Any,
    likelihood: Optional[str],
    x: torch.Tensor,
    dims: int,
    codec: bool,
    codec_images: Optional[int],
    elbo_samples: int,
    surgery_points: Optional[int],
    surgery_samples: int,
    to_input: Optional[Callable[[torch.Tensor], torch.Tensor]],
    batch: int,
    seed: int,
    extra: dict[str, Any],
) -> list[BoundRow]:
    if likelihood is None:
        raise InputError("a model needs its likelihood (bernoulli, categorical256, logistic_mixture, ...)")
    if elbo_samples < 1:
        raise InputError(f"elbo_samples must be >= 1, got {elbo_samples}")
    bb = BitsBackCodec(model, likelihood, batch=batch, to_input=to_input)
    x = bb.check_images(x)
    try:  # one image first: a model built for other images fails here, with the shapes named
        bb.nelbo_bits(x[:1], 1)
    except (RuntimeError, ValueError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(
            f"the model does not fit images {list(x.shape[1:])} under {bb.likelihood}: {_first_line(e)}"
        ) from None
    nelbo = bb.nelbo_bits(x, elbo_samples, seed=seed)
    n = len(x)
    se = float(nelbo.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    rows = [
        _row(
            "nelbo",
            f"model -ELBO ({bb.likelihood}, {elbo_samples} z/image)",
            float(nelbo.mean()),
            dims,
            "upper",
            f"{H_SET}; {H_P} held-out",
            "model",
            se,
        )
    ]
    mu, logvar = _posteriors(bb.model, bb.to_input, x, batch)
    sg = elbo_surgery(mu, logvar, points=surgery_points, samples=surgery_samples, seed=seed)
    extra["surgery"] = sg.to_dict()
    rows.append(
        _row(
            "mi",
            "I(X;Z), ELBO surgery",
            sg.mi_bits,
            dims,
            "lower",
            f"{H_SET}; {H_P} in exp.",
            "model",
            sg.mi_stderr_bits,
        )
    )
    if codec:
        xc, on = x, ""
        if codec_images is not None and codec_images < n:
            if codec_images < 1:
                raise InputError(f"codec_images must be >= 1, got {codec_images}")
            xc = x[np.unique(np.linspace(0, n - 1, codec_images).round().astype(np.int64))]
            on = f" ({len(xc)} of {n} images)"
        bb.encode(xc)
        assert bb.stats is not None
        s = bb.stats.summary()
        extra["codec"] = s
        rows += [
            _row(
                "bitsback_net",
                f"bits-back codec, net{on}",
                s["net_bits_per_image"],
                dims,
                "upper",
                f"{H_P} in exp. (i.i.d.), ≈ -ELBO",
                "model",
            ),
            _row(
                "bitsback_file",
                f"bits-back codec, whole file{on}",
                s["file_bits_per_image"],
                dims,
                "upper",
                f"{H_P} in exp. (i.i.d.)",
                "model",
            ),
        ]
    return rows


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def render_bounds(bounds: ImageBounds, style: str = "markdown") -> str:
    """``bounds`` as ``"markdown"`` (for reports and docs) or ``"text"`` (for a terminal)."""
    if style == "markdown":
        return bounds.to_markdown()
    if style == "text":
        return bounds.to_text()
    raise InputError(f"style must be 'markdown' or 'text', got {style!r}")


def _bits(value: float) -> Quantity:
    return Quantity(float(value), "bits", "image")


@dataclass(frozen=True)
class ColourBounds:
    """Upper bounds on H(X) of an image set where it is unknown, bits per image.

    - ``log2_n``: log N for N images (H of any distribution over the set is at most this);
    - ``raw``: 8 bits x subpixels;
    - ``png``: mean PNG file size (Pillow, optimize, level 9) — a per-image lossless code;
    - ``lzma``: xz over the whole set concatenated, divided by N — a code for the set as a block; an
      empirical figure for this one realisation (it bounds H(X) per image in expectation for i.i.d. sets).
    ``tightest`` names the smallest of the codec bounds and of ``log2_n``.
    """

    log2_n: Quantity
    raw: Quantity
    png: Quantity
    lzma: Quantity
    images: int

    @property
    def tightest(self) -> str:
        vals = {
            "log2_n": self.log2_n.bits,
            "png": self.png.bits,
            "lzma": self.lzma.bits,
            "raw": self.raw.bits,
        }
        return min(vals, key=lambda k: vals[k])

    @property
    def tighter_codec(self) -> str:
        """Which lossless codec gives the tighter bound: ``"png"`` or ``"lzma"``."""
        return "png" if self.png.bits < self.lzma.bits else "lzma"


def colour_bounds(images: Union[np.ndarray, torch.Tensor]) -> ColourBounds:
    """Bounds on H(X) for ``[N, H, W, C]`` (or ``[N, H, W]``) uint8 images, bits per image."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.dtype != np.uint8:
        raise ValueError(f"colour bounds need uint8 images, got {x.dtype}")
    n = len(x)
    if n == 0:
        raise ValueError("no images")
    subpixels = int(np.prod(x.shape[1:]))
    png_bytes = 0
    for im in x:
        buf = io.BytesIO()
        Image.fromarray(im.squeeze(-1) if im.ndim == 3 and im.shape[-1] == 1 else im).save(
            buf, format="PNG", optimize=True, compress_level=9
        )
        png_bytes += buf.tell()
    xz = len(lzma.compress(np.ascontiguousarray(x).tobytes(), preset=9 | lzma.PRESET_EXTREME))
    return ColourBounds(
        _bits(math.log2(n)), _bits(8 * subpixels), _bits(8 * png_bytes / n), _bits(8 * xz / n), n
    )


__all__ = [
    "H_P",
    "H_SET",
    "NOTES",
    "BoundRow",
    "ColourBounds",
    "ImageBounds",
    "check_images",
    "colour_bounds",
    "image_bounds",
    "render_bounds",
]
