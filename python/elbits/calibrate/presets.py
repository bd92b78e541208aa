"""The losses of three public VAE code bases as :class:`~elbits.calibrate.Weighting` s, read off their source.

Each function takes the code base's own setting names with its own defaults, and its docstring gives
the loss as that code computes it (files at the commits in :data:`SOURCES`). Pass the result to
:func:`~elbits.calibrate.audit` in place of the weights, or call its ``betas(dims=..., z_dim=...)``.

Where the code anneals a weight or a capacity, ``step`` (``epoch``, ``num_iter``) is the training
step the loss is evaluated at; None means annealing is over (a note on the Weighting says so), except
for pythae's DisentangledBetaVAE, which is given pythae's own default epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from ..errors import InputError
from .weighting import Weighting, check_weight

SOURCES = {
    "pythae": "clementchadebec/benchmark_VAE@6419e21 src/pythae/models/*/*_model.py (loss_function)",
    "disentangling-vae": "YannDubs/disentangling-vae@f045219 disvae/models/losses.py, hyperparam.ini",
    "PyTorch-VAE": "AntixK/PyTorch-VAE@a6896b9 models/{vanilla_vae,beta_vae}.py, experiment.py, configs/",
}


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InputError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return str(value)


def _unused(model: str, given: Mapping[str, Any]) -> None:
    extra = sorted(k for k, v in given.items() if v is not None)
    if extra:
        raise InputError(f"{model} has no setting {extra}")


def _step(name: str, value: Any) -> float:
    s = check_weight(name, value)
    if s < 0:
        raise InputError(f"{name} must be >= 0 (a training step count), got {value!r}")
    return s


def _terms(*pairs: tuple[float, str]) -> str:
    """``" + 2 MI - 5 TC"``: weighted terms with their signs."""
    return "".join(f" {'-' if w < 0 else '+'} {abs(w):.4g} {name}" for w, name in pairs)


def _anneal(step: Optional[float], steps: float) -> float:
    """Linear annealing from 0 to 1 over ``steps`` training steps (disentangling-vae's linear_annealing)."""
    if step is None or steps == 0:
        return 1.0
    return min(step / steps, 1.0)


# ---- pythae -------------------------------------------------------------------------------------

PYTHAE_MODELS = ("VAE", "BetaVAE", "DisentangledBetaVAE", "BetaTCVAE", "FactorVAE")


def pythae(
    model: str = "VAE",
    *,
    reconstruction_loss: str = "mse",
    beta: Optional[float] = None,
    C: Optional[float] = None,
    warmup_epoch: Optional[int] = None,
    epoch: Optional[float] = None,
    alpha: Optional[float] = None,
    gamma: Optional[float] = None,
) -> Weighting:
    """pythae (benchmark_VAE): per sample ``rec + reg``, then the batch mean.

    - ``rec``: ``reconstruction_loss="mse"`` (pythae's default): 0.5 x the sample's summed squared
      error (the Gaussian NLL at sigma = 1 up to a constant); ``"bce"``: BCE summed over the sample.
    - ``VAE``: reg = KL. ``BetaVAE``: beta KL (beta default 1).
    - ``DisentangledBetaVAE``: beta |KL_i - C min(epoch / (warmup_epoch + 1), 1)| per sample (beta 10,
      C 50 nats, warmup_epoch 25; with no ``epoch``, pythae's forward uses epoch = warmup_epoch).
    - ``BetaTCVAE``: alpha MI + beta TC + gamma dwKL (all 1 by default).
    - ``FactorVAE``: KL + gamma TC (gamma 2; TC: the discriminator's logit difference). This is the
      VAE's objective, ``autoencoder_loss``; pythae's ``output.loss`` adds the discriminator's loss.
    """
    _choice("model", model, PYTHAE_MODELS)
    _choice("reconstruction_loss", reconstruction_loss, ("mse", "bce"))
    w_r, kind = (0.5, "mse") if reconstruction_loss == "mse" else (1.0, "nll")
    base: dict[str, Any] = {"recon_reduction": "sum", "kl_reduction": "sum", "recon_kind": kind}
    rec = "0.5 SSE_i" if kind == "mse" else "BCE_sum_i"
    name = f"pythae {model} (reconstruction_loss={reconstruction_loss!r})"
    if model == "VAE":
        _unused(model, {"beta": beta, "C": C, "warmup_epoch": warmup_epoch, "epoch": epoch, "alpha": alpha,
                        "gamma": gamma})  # fmt: skip
        return Weighting(w_r, 1.0, **base, name=name, formula=f"mean_i[{rec} + KL_i]")
    if model == "BetaVAE":
        _unused(model, {"C": C, "warmup_epoch": warmup_epoch, "epoch": epoch, "alpha": alpha, "gamma": gamma})
        bt = 1.0 if beta is None else beta
        return Weighting(w_r, bt, **base, name=name, formula=f"mean_i[{rec} + {bt:g} KL_i]")
    if model == "DisentangledBetaVAE":
        _unused(model, {"alpha": alpha, "gamma": gamma})
        bt = 10.0 if beta is None else beta
        c_max = 50.0 if C is None else check_weight("C", C)
        warm = 25 if warmup_epoch is None else int(_step("warmup_epoch", warmup_epoch))
        notes: tuple[str, ...] = ()
        if epoch is None:
            notes = (f"No epoch given: pythae's forward then uses epoch = warmup_epoch = {warm}.",)
            epoch = warm
        c = c_max * min(_step("epoch", epoch) / (warm + 1), 1.0)
        return Weighting(
            w_r, bt, **base, capacity=c, capacity_per_sample=True, name=name, notes=notes,
            formula=f"mean_i[{rec} + {bt:g} |KL_i - {c:.4g}|]",
        )  # fmt: skip
    if model == "BetaTCVAE":
        _unused(model, {"C": C, "warmup_epoch": warmup_epoch, "epoch": epoch})
        a, bt, g = (1.0 if v is None else v for v in (alpha, beta, gamma))
        return Weighting(
            w_r, 0.0, **base, parts={"mi": a, "tc": bt, "dwkl": g}, name=name,
            formula=f"mean_i[{rec}{_terms((a, 'MI_i'), (bt, 'TC_i'), (g, 'dwKL_i'))}]",
        )  # fmt: skip
    _unused(model, {"beta": beta, "C": C, "warmup_epoch": warmup_epoch, "epoch": epoch, "alpha": alpha})
    g = 2.0 if gamma is None else gamma
    return Weighting(
        w_r, 1.0, **base, parts={"tc": g}, name=name, formula=f"mean_i[{rec} + KL_i] + {g:g} TC_disc",
        notes=("TC is the discriminator's estimate: pass it as kl_parts={'tc': ...}.",),
    )  # fmt: skip


# ---- disentangling-vae --------------------------------------------------------------------------

DISVAE_LOSSES = ("VAE", "betaH", "betaB", "factor", "btcvae")
_DISVAE_REC = {"bernoulli": (1.0, "nll", "BCE_sum"), "gaussian": (255.0, "mse", "255 SSE"),
               "laplace": (3.0, "l1", "3 SAE")}  # fmt: skip


def disentangling_vae(
    loss: str = "betaB",
    *,
    rec_dist: str = "bernoulli",
    betaH_B: float = 4.0,
    betaB_initC: float = 0.0,
    betaB_finC: float = 25.0,
    betaB_G: float = 100.0,
    factor_G: float = 6.0,
    btcvae_A: float = 1.0,
    btcvae_B: float = 6.0,
    btcvae_G: float = 1.0,
    reg_anneal: float = 10000,
    step: Optional[float] = None,
) -> Weighting:
    """disentangling-vae: ``rec + reg``, each a batch mean of per-sample sums (defaults: hyperparam.ini's
    ``[Custom]`` section; its ``betaB_*`` experiments set ``reg_anneal = 100000``).

    - ``rec``: ``rec_dist="bernoulli"``: BCE summed over the image; ``"gaussian"``: 255 x SSE (their
      ``mse_loss(255 x, 255 y, sum) / 255``); ``"laplace"``: 3 x the summed absolute error.
    - ``VAE``/``betaH``: a(t) beta KL with a(t) = min(step / reg_anneal, 1) (beta = 1 for VAE).
    - ``betaB``: gamma |KL - C(t)| on the batch-mean KL, C(t) = initC + (finC - initC) a(t).
    - ``factor``: KL + a(t) gamma TC (TC: the discriminator's logit difference).
    - ``btcvae``: alpha MI + beta TC + a(t) gamma dwKL.

    ``step`` counts training batches from 1 (their ``n_train_steps``); None: annealing is over, as in
    their evaluation.
    """
    _choice("loss", loss, DISVAE_LOSSES)
    _choice("rec_dist", rec_dist, tuple(_DISVAE_REC))
    steps = _step("reg_anneal", reg_anneal)
    t = None if step is None else _step("step", step)
    a = _anneal(t, steps)
    w_r, kind, rec = _DISVAE_REC[rec_dist]
    base: dict[str, Any] = {"recon_reduction": "sum", "kl_reduction": "sum", "recon_kind": kind}
    name = f"disentangling-vae {loss} (rec_dist={rec_dist!r})"
    notes: tuple[str, ...] = (
        () if t is not None else ("No step given: annealing taken as over (their evaluation mode).",)
    )
    if loss in ("VAE", "betaH"):
        bt = 1.0 if loss == "VAE" else check_weight("betaH_B", betaH_B)
        return Weighting(w_r, a * bt, **base, name=name, notes=notes,
                         formula=f"mean[{rec}]{_terms((a * bt, 'mean[KL]'))}")  # fmt: skip
    if loss == "betaB":
        c0, c1 = check_weight("betaB_initC", betaB_initC), check_weight("betaB_finC", betaB_finC)
        c = c0 + (c1 - c0) * a
        g = check_weight("betaB_G", betaB_G)
        return Weighting(w_r, g, **base, capacity=c, name=name, notes=notes,
                         formula=f"mean[{rec}] + {g:g} |mean[KL] - {c:.4g}|")  # fmt: skip
    if loss == "factor":
        g = a * check_weight("factor_G", factor_G)
        return Weighting(
            w_r, 1.0, **base, parts={"tc": g}, name=name,
            notes=notes + ("TC is the discriminator's estimate: pass it as kl_parts={'tc': ...}.",),
            formula=f"mean[{rec}] + mean[KL] + {g:.4g} TC_disc",
        )  # fmt: skip
    al, bt, g = (
        check_weight(k, v)
        for k, v in (("btcvae_A", btcvae_A), ("btcvae_B", btcvae_B), ("btcvae_G", btcvae_G))
    )
    return Weighting(
        w_r, 0.0, **base, parts={"mi": al, "tc": bt, "dwkl": a * g}, name=name, notes=notes,
        formula=f"mean[{rec}]{_terms((al, 'MI'), (bt, 'TC'), (a * g, 'dwKL'))}",
    )  # fmt: skip


_SPECS_KEYS = ("rec_dist", "betaH_B", "betaB_initC", "betaB_finC", "betaB_G", "factor_G", "btcvae_A",
               "btcvae_B", "btcvae_G", "reg_anneal")  # fmt: skip


def disentangling_vae_from_specs(specs: Mapping[str, Any], step: Optional[float] = None) -> Weighting:
    """:func:`disentangling_vae` with the settings of a run's ``specs.json`` (a parsed mapping)."""
    if not isinstance(specs, Mapping) or "loss" not in specs:
        raise InputError("specs must be the mapping of a disentangling-vae specs.json, with its 'loss'")
    return disentangling_vae(specs["loss"], step=step, **{k: specs[k] for k in _SPECS_KEYS if k in specs})


# ---- PyTorch-VAE --------------------------------------------------------------------------------

# configs/*.yaml: model_params and exp_params.kld_weight.
PYTORCH_VAE_CONFIGS: dict[str, dict[str, Any]] = {
    "vae": {"model": "VanillaVAE", "kld_weight": 0.00025},
    "bhvae": {"model": "BetaVAE", "loss_type": "H", "beta": 10.0, "kld_weight": 0.00025},
    "bbvae": {"model": "BetaVAE", "loss_type": "B", "gamma": 10.0, "max_capacity": 25.0,
              "Capacity_max_iter": 10000, "kld_weight": 0.00025},
}  # fmt: skip


def pytorch_vae(
    model: str = "VanillaVAE",
    *,
    kld_weight: Optional[float] = None,
    loss_type: Optional[str] = None,
    beta: Optional[float] = None,
    gamma: Optional[float] = None,
    max_capacity: Optional[float] = None,
    Capacity_max_iter: Optional[float] = None,
    num_iter: Optional[float] = None,
) -> Weighting:
    """PyTorch-VAE: ``F.mse_loss(recons, input)`` (the mean over every subpixel of the batch) plus the
    batch-mean KL (summed over latents) times ``M_N = kld_weight`` (0.00025 in every config).

    - ``model``: ``"VanillaVAE"``, ``"BetaVAE"`` (class defaults: loss_type 'B', beta 4, gamma 1000,
      max_capacity 25, Capacity_max_iter 1e5) or a config name, ``"vae"``, ``"bhvae"``, ``"bbvae"``,
      whose values become the defaults.
    - VanillaVAE: MSE + M_N KL. BetaVAE 'H': MSE + beta M_N KL. 'B': MSE + gamma M_N |KL - C|, C =
      clamp(max_capacity num_iter / Capacity_max_iter, 0, max_capacity); ``num_iter`` counts every loss
      call, validation included (None: C = max_capacity).

    Validation steps pass M_N = 1.0: their losses weigh the KL 1 / kld_weight times more.
    """
    settings: dict[str, Any] = {}
    if model in PYTORCH_VAE_CONFIGS:
        settings.update(PYTORCH_VAE_CONFIGS[model])
        model = settings.pop("model")
    if model not in ("VanillaVAE", "BetaVAE"):
        raise InputError(
            f"model must be 'VanillaVAE', 'BetaVAE' or a config {list(PYTORCH_VAE_CONFIGS)}, got {model!r}"
        )
    given = {"kld_weight": kld_weight, "loss_type": loss_type, "beta": beta, "gamma": gamma,
             "max_capacity": max_capacity, "Capacity_max_iter": Capacity_max_iter}  # fmt: skip
    settings.update({k: v for k, v in given.items() if v is not None})
    m_n = check_weight("kld_weight", settings.pop("kld_weight", 0.00025))
    base: dict[str, Any] = {"recon_reduction": "mean", "kl_reduction": "sum", "recon_kind": "mse"}
    if model == "VanillaVAE":
        _unused(model, {**settings, "num_iter": num_iter})
        return Weighting(
            1.0, m_n, **base, name="PyTorch-VAE VanillaVAE", formula=f"MSE_mean + {m_n:g} mean[KL]"
        )
    lt = _choice("loss_type", settings.pop("loss_type", "B"), ("H", "B"))
    bt = check_weight("beta", settings.pop("beta", 4.0))
    g = check_weight("gamma", settings.pop("gamma", 1000.0))
    c_max = check_weight("max_capacity", settings.pop("max_capacity", 25.0))
    stop = check_weight("Capacity_max_iter", settings.pop("Capacity_max_iter", 1e5), positive=True)
    name = f"PyTorch-VAE BetaVAE (loss_type={lt!r})"
    if lt == "H":
        if num_iter is not None:
            raise InputError("num_iter only sets the capacity of loss_type 'B'")
        return Weighting(
            1.0, bt * m_n, **base, name=name, formula=f"MSE_mean{_terms((bt * m_n, 'mean[KL]'))}"
        )
    notes: tuple[str, ...] = ()
    if num_iter is None:
        c, notes = c_max, ("No num_iter given: C taken at max_capacity.",)
    else:
        c = min(max(c_max / stop * _step("num_iter", num_iter), 0.0), c_max)
    return Weighting(
        1.0, g * m_n, **base, capacity=c, name=name, notes=notes,
        formula=f"MSE_mean{_terms((g * m_n, f'|mean[KL] - {c:.4g}|'))}",
    )  # fmt: skip
