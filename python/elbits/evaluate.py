"""Evaluate a trained VAE: rate, distortion, per-dimension KL, active units and the ELBO-surgery split.

Loads a disentangling-vae Burgess checkpoint (``model.pt`` or its folder) or an elbits training checkpoint
(``checkpoint.pt`` of ``elbits train``), and evaluates it on the procedural dSprites (a seeded random subset,
or the whole grid) or on given images (``.npy`` uint8 {0, 1} ``[N, 64, 64]`` / ``[N, 1, 64, 64]``, or the
10x10 PNG grid of the shared reference samples). Every figure is bits per image.

- R: the analytic KL(q(z|x) || N(0, I)), summed over latents, averaged over images.
- D: the Bernoulli NLL of x given z, averaged over ``samples`` draws z ~ q(z|x) per image (the ELBO's
  distortion, so D + R is a code length and H - D <= R); ``distortion_mu_bits``: at z = mu, for comparison.
- I(X;Z) and KL(q(z) || p(z)) with x uniform over the evaluated images: :func:`elbits.analysis.elbo_surgery`.
- H(X): the exact entropy of the evaluated images (de-duplicated, :mod:`elbits.entropy`), <= log2 N, and the
  dSprites factor entropy (19.49 bits) the question is about.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from . import entropy as E
from .analysis import Surgery, elbo_surgery, gaussian_kl
from .api import elbo_terms
from .data import dsprites as ds
from .meter import RateDistortionMeter
from .terms import ELBOTerms
from .units import BITS_PER_NAT, NATS_PER_BIT

PathLike = Union[str, Path]


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(path: PathLike, device: Union[str, torch.device] = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """``(model, info)`` from an elbits training checkpoint or a disentangling-vae ``model.pt`` (or folder).

    An elbits checkpoint (``{"format": 2, "model": state_dict, "config": {...}, "step": ...}`` behind its
    sha256, see :mod:`elbits.train.checkpoint`) holds a :class:`~elbits.models.BurgessVAE` state_dict (the
    default model of ``elbits train``); its ``z_dim`` and channels are read from the weights. Nothing is
    unpickled beyond tensors and plain values; corrupt, foreign or mismatched files raise
    :class:`~elbits.errors.InputError` naming the file. ``info``: ``kind``, ``path``, ``z_dim`` and, for
    elbits checkpoints, ``step`` and the training ``config``; for disentangling-vae, its ``specs.json``.
    """
    from .errors import InputError, MissingFileError
    from .models.burgess import burgess_from_state_dict, disentangling_vae_specs
    from .torchfiles import load_torch_file
    from .train.checkpoint import is_checkpoint_file, load_checkpoint, validate_state

    p = Path(path)
    if p.is_dir():
        p = p / ("checkpoint.pt" if (p / "checkpoint.pt").is_file() else "model.pt")
    if not p.is_file():
        raise MissingFileError(f"no checkpoint at {p}")
    info: dict[str, Any] = {"path": str(p)}
    if is_checkpoint_file(p):
        state: Any = load_checkpoint(p, require=("model",))
    else:
        state = load_torch_file(p, "an elbits checkpoint or a disentangling-vae model.pt")
        if (
            isinstance(state, dict) and "format" in state
        ):  # an elbits checkpoint of format 1 (a bare torch zip)
            if state["format"] != 1:
                raise InputError(f"{p}: elbits checkpoint format {state['format']!r} without its header line")
            state = validate_state(state, p, require=("model",))
    model: nn.Module
    if isinstance(state, dict) and "format" in state:
        model = burgess_from_state_dict(state["model"], str(p))
        config = state.get("config", {})
        info.update(
            kind="elbits",
            step=int(state.get("step", 0)),
            config=config if isinstance(config, dict) else {},
            z_dim=int(model.z_dim),
        )
    else:
        model = burgess_from_state_dict(state, str(p))
        info.update(kind="disentangling-vae", z_dim=int(model.z_dim))
        specs = p.parent / "specs.json"
        if specs.is_file():
            info["specs"] = disentangling_vae_specs(specs)
    return model.to(device).eval(), info


def load_images(path: PathLike) -> torch.Tensor:
    """``[N, 1, 64, 64]`` uint8 {0, 1} images from a ``.npy`` (``[N, 64, 64]`` or ``[N, 1, 64, 64]``; bool,
    integer or float, every value 0 or 1) or from the 10x10 reference PNG grid (see
    /work/shared/reference/README.md), told apart by their content, not their names.

    Read with pickling off; anything else raises :class:`~elbits.errors.InputError` naming the file and
    what was expected.
    """
    from .data.npyfile import NPY_MAGIC, PNG_MAGIC, describe_start, first_non_binary, load_npy, npy_header
    from .errors import InputError, MissingFileError

    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"no images file at {p}")
    with p.open("rb") as f:
        lead = f.read(16)
    if lead.startswith(PNG_MAGIC):
        from .data.fidelity import load_reference_grid

        arr = load_reference_grid(p)
    elif lead.startswith(NPY_MAGIC):
        head = npy_header(p)
        shape = head.shape
        if len(shape) == 4 and shape[1] == 1:
            shape = (shape[0], *shape[2:])
        if head.dtype.kind not in "biuf" or len(shape) != 3 or shape[1:] != (64, 64) or shape[0] < 1:
            raise InputError(
                f"{p}: {list(head.shape)} {head.dtype}; expected images [N, 64, 64] or "
                "[N, 1, 64, 64] (N >= 1) of 0/1 values"
            )
        arr = load_npy(p, head).reshape(shape)
        bad = first_non_binary(arr)
        if bad is not None:
            raise InputError(
                f"{p}: pixel value {bad!r} ({arr.dtype}); expected every pixel 0 or 1 (binary dSprites)"
            )
    else:
        raise InputError(
            f"{p}: not a .npy array or a PNG grid ({describe_start(lead)}); expected uint8 0/1 "
            "images [N, 64, 64] in a .npy, or the 10x10 reference PNG grid"
        )
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).unsqueeze(1)  # a copy: arr may map the file


def procedural_set(limit: Optional[int] = 16384, seed: int = 0) -> ds.ProceduralDSprites:
    """``limit`` images of the procedural grid drawn without replacement (seeded, sorted); ``None``: all
    737,280."""
    return ds.ProceduralDSprites(ds.seeded_subset(ds.NUM_IMAGES, limit, seed), cache=False)


class _TensorImages:
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def images(self, items: Any) -> torch.Tensor:
        return self.x[torch.as_tensor(np.asarray(items, dtype=np.int64))]


@dataclass
class Evaluation:
    """What :func:`evaluate_model` measured; ``to_dict()`` is the ``--json`` object (bits per image)."""

    source: str
    images: int
    samples: int
    scalars: dict[str, float]
    distortion_mu_bits: float
    surgery: Surgery
    entropy: dict[str, Any]
    seconds: float
    model: dict[str, Any] = field(default_factory=dict)
    distortion_images: int = 0
    posteriors: Optional[tuple[torch.Tensor, torch.Tensor]] = field(default=None, repr=False)

    @property
    def rate_bits(self) -> float:
        return self.scalars["rate_bits"]

    @property
    def distortion_bits(self) -> float:
        return self.scalars["distortion_bits"]

    @property
    def kl_per_dim_bits(self) -> list[float]:
        return [self.scalars[f"kl_{i}_bits"] for i in range(int(self.scalars["z_dim"]))]

    def to_dict(self) -> dict[str, Any]:
        s, sg = self.scalars, self.surgery
        return {
            "source": self.source,
            "images": self.images,
            "distortion_samples": self.samples,
            "distortion_images": self.distortion_images or self.images,
            "rate_bits": s["rate_bits"],
            "distortion_bits": s["distortion_bits"],
            "distortion_mu_bits": self.distortion_mu_bits,
            "nelbo_bits": s["nelbo_bits"],
            "distortion_std_bits": s["distortion_std_bits"],
            "kl_per_dim_bits": self.kl_per_dim_bits,
            "active_units": int(s["active_units"]),
            "active_threshold_bits": s["active_threshold_nats"] * BITS_PER_NAT,
            "mi_bits": sg.mi_bits,
            "mi_stderr_bits": sg.mi_stderr_bits,
            "marginal_kl_bits": sg.marginal_kl_bits,
            "marginal_kl_mc_bits": sg.marginal_kl_mc_bits,
            "mi_loo_bits": sg.mi_loo_bits,
            "marginal_kl_per_dim_bits": list(sg.marginal_kl_per_dim_bits),
            "log_n_bits": sg.log_n_bits,
            "mi_points": sg.points,
            "mi_samples_per_point": sg.samples_per_point,
            "mi_estimator": sg.estimator,
            **self.entropy,
            "bound_bits": s.get("bound_bits"),
            "bound_slack_bits": s.get("bound_slack_bits"),
            "rate_over_factor_entropy": s["rate_bits"] / self.entropy["factor_bits"],
            "seconds": round(self.seconds, 2),
            "model": self.model,
        }


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    images: Any,
    *,
    samples: int = 4,
    seed: int = 0,
    batch_size: int = 256,
    mi_points: Optional[int] = 2048,
    mi_samples: int = 4,
    device: Optional[torch.device] = None,
    source: str = "",
    keep_posteriors: bool = False,
    progress: bool = False,
    distortion_images: Optional[int] = None,
) -> Evaluation:
    """Evaluate ``model`` (``encode``/``decode``, Bernoulli logits, or probabilities where the model declares
    ``decoder_output = "probs"``, as :mod:`elbits.models`' adapters do) on ``images``.

    ``images``: a ``[N, 1, 64, 64]`` / ``[N, 64, 64]`` tensor in {0, 1}, or a dataset with an
    ``images(items)``
    batch read (dSprites). D averages ``samples`` posterior draws per image (seeded); the surgery samples
    z at ``mi_points`` images, ``mi_samples`` each, against all N posteriors. ``distortion_images``: decode
    (D and D at z = mu) only a seeded random subset of this many images (an estimate of the same means);
    R, the KL per dimension and the surgery still use every image (the encoder pass is the cheap one).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    kind = getattr(model, "decoder_output", None) or "logits"
    if kind not in ("logits", "probs"):
        from .errors import InputError

        raise InputError(
            f"evaluate reads Bernoulli logits or probabilities; this model's decoder_output is {kind!r}"
        )
    as_probs: dict[str, Any] = {"input": "probs"} if kind == "probs" else {}
    t0 = time.perf_counter()
    data = images if hasattr(images, "images") else _TensorImages(torch.as_tensor(images))
    n = len(data)
    if n == 0:
        raise ValueError("no images to evaluate")
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    encode: Any = model.encode
    decode: Any = model.decode
    g = torch.Generator().manual_seed(int(seed))
    meter = RateDistortionMeter()  # D (and the KL of the decoded images)
    rate_meter = RateDistortionMeter()  # R and KL per dimension over every image
    decode_mask: Optional[np.ndarray] = None
    if distortion_images is not None and distortion_images < n:
        decode_mask = np.zeros(n, bool)
        decode_mask[np.random.default_rng(seed).choice(n, int(distortion_images), replace=False)] = True
    n_decoded = n if decode_mask is None else int(decode_mask.sum())
    recon_mu_sum = 0.0
    mus, lvs = [], []
    counter, hist = E.ImageCounter(), E.PixelHistogram(levels=2)
    starts = range(0, n, batch_size)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="img", desc="evaluate", dynamic_ncols=True)
    try:
        for start in starts:
            xb = data.images(np.arange(start, min(start + batch_size, n)))
            if xb.dim() == 3:
                xb = xb[:, None]
            x_u8 = xb.to(torch.uint8).cpu()
            counter.update(x_u8)
            hist.update(x_u8)
            x = xb.to(device=device, dtype=torch.float32)
            batch = len(x)
            mu, logvar = encode(x)
            kl = gaussian_kl(mu, logvar)
            rate_meter.update(ELBOTerms(torch.zeros(batch, dtype=torch.float64), kl, x[0].numel()))
            if decode_mask is not None:
                rows = torch.from_numpy(np.nonzero(decode_mask[start : start + batch])[0]).to(device)
                x, mu_d, lv_d = x[rows], mu[rows], logvar[rows]
            else:
                mu_d, lv_d = mu, logvar
            if len(x):
                t_mu = elbo_terms(decode(mu_d), x, mu_d, lv_d, **as_probs)
                recon_mu_sum += float(t_mu.recon.double().sum())
                recon = torch.zeros(len(x), dtype=torch.float64, device=device)
                for _ in range(samples):
                    eps = torch.randn(mu_d.shape, generator=g).to(device=device, dtype=mu_d.dtype)
                    z = mu_d + eps * torch.exp(0.5 * lv_d)
                    recon += elbo_terms(decode(z), x, mu_d, lv_d, **as_probs).recon.double()
                meter.update(ELBOTerms(recon / samples, t_mu.kl, t_mu.dims))
            mus.append(mu.double().cpu())
            lvs.append(logvar.double().cpu())
            if bar is not None:
                bar.update(batch)
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    mu_all, lv_all = torch.cat(mus), torch.cat(lvs)
    emp, marg = counter.result(), hist.result()
    h_bits = emp.entropy.bits
    scalars = _merge_scalars(rate_meter.scalars(reduce=False), meter.scalars(reduce=False), h_bits)
    surgery = elbo_surgery(mu_all, lv_all, points=mi_points, samples=mi_samples, seed=seed, device=device)
    ent = {
        "h_bits": h_bits,
        "distinct_images": int(emp.distinct),
        "factor_bits": E.factor_entropy(ds.SIZES).bits,
        "marginal_sum_bits": marg.total.bits,
    }
    return Evaluation(
        source=source or f"{n} images",
        images=n,
        samples=samples,
        scalars=scalars,
        distortion_mu_bits=recon_mu_sum / n_decoded * BITS_PER_NAT,
        distortion_images=n_decoded,
        surgery=surgery,
        entropy=ent,
        seconds=time.perf_counter() - t0,
        posteriors=(mu_all, lv_all) if keep_posteriors else None,
    )


def _merge_scalars(rate: dict[str, float], dist: dict[str, float], h_bits: float) -> dict[str, float]:
    """Rate figures of every image with the distortion figures of the decoded ones, and the budget H(X)."""
    out = dict(rate)
    for k in ("distortion_nats", "distortion_bits", "distortion_bits_per_dim", "distortion_std_bits"):
        out[k] = dist[k]
    out["distortion_samples_images"] = dist["samples"]
    r, d, dims = out["rate_bits"], out["distortion_bits"], out["dims"]
    out.update(
        nelbo_bits=r + d,
        nelbo_nats=(r + d) * NATS_PER_BIT,
        nelbo_bits_per_dim=(r + d) / dims,
        budget_bits=h_bits,
        budget_nats=h_bits * NATS_PER_BIT,
        bound_bits=h_bits - d,
        bound_nats=(h_bits - d) * NATS_PER_BIT,
        bound_slack_bits=r - (h_bits - d),
        bound_slack_nats=(r - (h_bits - d)) * NATS_PER_BIT,
        rate_over_budget=r / h_bits if h_bits > 0 else math.nan,
    )
    return out


def evaluate_checkpoint(
    checkpoint: PathLike,
    images: Optional[PathLike] = None,
    *,
    limit: Optional[int] = 16384,
    data_seed: int = 0,
    device: str = "auto",
    **kw: Any,
) -> Evaluation:
    """:func:`evaluate_model` of a checkpoint (see :func:`load_model`) on ``images`` (a file, see
    :func:`load_images`) or, when ``None``, on ``limit`` seeded procedural dSprites images (``None``: all)."""
    dev = pick_device(device)
    model, info = load_model(checkpoint, dev)
    data: Any
    if images is not None:
        data = load_images(images)
        source = f"{len(data)} images from {Path(images).name}"
    else:
        data = procedural_set(limit, data_seed)
        source = f"{len(data)} procedural dSprites images" + (
            " (the whole grid)" if len(data) == ds.NUM_IMAGES else f" (random subset, seed {data_seed})"
        )
    ev = evaluate_model(model, data, device=dev, source=source, **kw)
    ev.model = info
    return ev


def format_text(ev: Evaluation) -> str:
    """The human-readable report of ``elbits evaluate``."""
    d, sg = ev.to_dict(), ev.surgery
    kl = " ".join(f"{v:.2f}" for v in d["kl_per_dim_bits"])
    mk = " ".join(f"{v:.2f}" for v in d["marginal_kl_per_dim_bits"])
    lines = [
        f"model: {ev.model.get('kind', '?')} {ev.model.get('path', '')}",
        f"data: {ev.source}; H(X) = {d['h_bits']:.3f} bits ({d['distinct_images']} distinct), "
        f"log2 N = {sg.log_n_bits:.3f}, dSprites factor entropy = {d['factor_bits']:.3f} bits",
        f"rate R = KL(q(z|x)||p(z))   {d['rate_bits']:8.3f} bits/image "
        f"({d['rate_over_factor_entropy']:.2f} x the factor entropy)",
        f"distortion D (z ~ q(z|x), {ev.samples} samples)  {d['distortion_bits']:8.3f} bits/image "
        f"(at z = mu: {d['distortion_mu_bits']:.3f})",
        f"negative ELBO R + D         {d['nelbo_bits']:8.3f} bits/image; bound H - D = "
        f"{d['bound_bits']:.3f}, "
        f"slack R - (H - D) = {d['bound_slack_bits']:.3f}",
        f"KL per dimension (bits): {kl}",
        f"active units: {d['active_units']} (KL > {d['active_threshold_bits']:.4f} bits)",
        f"ELBO surgery: I(X;Z) = {sg.mi_bits:.3f} +- {sg.mi_stderr_bits:.3f} bits (<= log2 N = "
        f"{sg.log_n_bits:.3f}), "
        f"KL(q(z)||p(z)) = R - I = {sg.marginal_kl_bits:.3f} bits (direct MC {sg.marginal_kl_mc_bits:.3f})",
        f"  leave-one-out I (upper bound for a larger set) = {_fmt(sg.mi_loo_bits)} bits; "
        f"{sg.points} points x {sg.samples_per_point} z samples against {sg.components} posteriors",
        f"  marginal KL(q(z_j)||N(0,1)) per dimension (bits): {mk}",
        f"time: {ev.seconds:.1f} s",
    ]
    return "\n".join(lines)


def plot_evaluation(ev: Evaluation, path: PathLike) -> Path:
    """A PNG: KL per latent dimension (left) and R split into I(X;Z) and KL(q(z)||p(z)) against H(X),
    log2 N and the factor entropy (right), bits per image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    d, sg = ev.to_dict(), ev.surgery
    fig = Figure(figsize=(9, 3.8), dpi=90)
    FigureCanvasAgg(fig)
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    kl = d["kl_per_dim_bits"]
    bars = ax.bar(range(len(kl)), kl, color="C0")
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in kl], fontsize=7, padding=2)
    ax.set_xticks(range(len(kl)))
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL(q(z_j|x)||N(0,1)), bits per image")
    ax.set_title(f"R = {d['rate_bits']:.1f} bits, {d['active_units']} active units", fontsize=10)
    ax2.bar([0], [sg.mi_bits], color="C2", width=0.5, label=f"I(X;Z) = {sg.mi_bits:.2f}")
    ax2.bar(
        [0],
        [sg.marginal_kl_bits],
        bottom=[sg.mi_bits],
        color="C1",
        width=0.5,
        label=f"KL(q(z)||p(z)) = {sg.marginal_kl_bits:.2f}",
    )
    ax2.bar(
        [1],
        [d["distortion_bits"]],
        color="C7",
        width=0.5,
        label=f"D (z sampled) = {d['distortion_bits']:.1f}",
    )
    ax2.axhline(d["factor_bits"], color="0.3", ls="-.", lw=1, label=f"factor entropy {d['factor_bits']:.2f}")
    ax2.axhline(d["h_bits"], color="C3", ls="--", lw=1, label=f"H(X) of these images {d['h_bits']:.2f}")
    if abs(sg.log_n_bits - d["h_bits"]) > 0.05:
        ax2.axhline(sg.log_n_bits, color="k", ls=":", lw=1, label=f"log2 N = {sg.log_n_bits:.2f}")
    ax2.set_xticks([0, 1])
    ax2.set_xticklabels(["rate R", "distortion D"])
    ax2.set_xlim(-0.6, 2.6)
    ax2.set_ylabel("bits per image")
    ax2.set_title(ev.source, fontsize=9)
    ax2.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


CSV_KEYS = (
    "rate_bits",
    "distortion_bits",
    "distortion_mu_bits",
    "distortion_samples",
    "distortion_images",
    "mi_bits",
    "mi_stderr_bits",
    "marginal_kl_bits",
    "marginal_kl_mc_bits",
    "log_n_bits",
    "h_bits",
    "factor_bits",
    "marginal_sum_bits",
    "active_units",
    "images",
    "seconds",
)


def append_csv(result: dict[str, Any], path: PathLike, label: str) -> Path:
    """Append one row (``label``, the source, :data:`CSV_KEYS`, the KL per dimension) of an
    :meth:`Evaluation.to_dict` (or ``--json`` output) to ``path``, writing the header when it is new."""
    import csv

    path = Path(path)
    new = not path.is_file() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["run", "source", *CSV_KEYS, "kl_per_dim_bits"])
        vals = [result.get(k, result["images"] if k == "distortion_images" else "") for k in CSV_KEYS]
        w.writerow(
            [
                label,
                result["source"],
                *(f"{v:.6g}" if isinstance(v, float) else v for v in vals),
                " ".join(f"{v:.4g}" for v in result["kl_per_dim_bits"]),
            ]
        )
    return path


def _fmt(v: float) -> str:
    return f"{v:.3f}" if math.isfinite(v) and abs(v) < 1e6 else f"{v:.3g}"


__all__ = [
    "CSV_KEYS",
    "Evaluation",
    "append_csv",
    "evaluate_checkpoint",
    "evaluate_model",
    "format_text",
    "load_images",
    "load_model",
    "pick_device",
    "plot_evaluation",
    "procedural_set",
]
