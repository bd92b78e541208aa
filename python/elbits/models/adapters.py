"""Adapters that give pythae and disentangling-vae models the interface elbits' loops use, without hooks.

An adapter is an ``nn.Module`` holding the client's model (its parameters, state_dict keys under ``model.``)
with the three calls :func:`elbits.train.train`, :func:`elbits.evaluate.evaluate_model` and a
:class:`elbits.RateDistortionMeter` loop make:

- ``encode(x) -> (mu, logvar)``, each ``[B, Z]``: q(z|x) = N(mu, exp(logvar)), nats;
- ``decode(z) -> out``, ``[B, *x.shape[1:]]``: Bernoulli logits or probabilities, as ``decoder_output`` says;
- ``forward(x) -> (out, mu, logvar)``, z drawn as the client's own forward draws it.

``decoder_output`` is ``"logits"`` or ``"probs"`` (the ``input`` of :func:`elbits.elbo_terms`). Both clients'
decoders end in a sigmoid; with ``decoder_output="auto"`` the adapter takes that sigmoid's *input* as the
logits whenever the decoder's result is provably the output of its last sigmoid (a view of it, untouched
since): so pythae's ``nn.Sigmoid`` layers and disentangling-vae's ``torch.sigmoid(convT3(x))`` both give
logits, exact where the probabilities saturate to 0 or 1 in float32. A decoder whose result is not such a
sigmoid's output is read as probabilities. ``adapter.terms(x)`` returns the :class:`elbits.ELBOTerms` of a
batch with the right ``input``.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any, Optional

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from .. import api
from ..errors import InputError
from ..terms import ELBOTerms
from .burgess import BurgessVAE

DECODER_OUTPUTS = ("logits", "probs")
_CHOICES = ("auto", *DECODER_OUTPUTS)
_SIGMOIDS: tuple[Callable[..., Any], ...] = (
    torch.sigmoid,
    torch.Tensor.sigmoid,
    torch.special.expit,
    F.sigmoid,
)


def probs_input_available() -> bool:
    """Whether :func:`elbits.elbo_terms` reads probabilities (``input="probs"``) in this version."""
    return "probs" in getattr(api, "INPUTS", ()) and "input" in inspect.signature(api.elbo_terms).parameters


class _SigmoidTap(TorchFunctionMode):
    """Remembers the input and output of the last out-of-place sigmoid the code under it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.last: Optional[tuple[torch.Tensor, Optional[int], torch.Tensor, Optional[int]]] = None

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if (
            any(func is s for s in _SIGMOIDS)
            and "out" not in kwargs
            and isinstance(out, torch.Tensor)
            and args
            and isinstance(args[0], torch.Tensor)
        ):
            self.last = (args[0], _version(args[0]), out, _version(out))
        return out


def _version(t: torch.Tensor) -> Optional[int]:
    """The in-place version counter; None for inference tensors, which have none."""
    return None if t.is_inference() else t._version


def _logits_behind(result: torch.Tensor, tap: _SigmoidTap) -> Optional[torch.Tensor]:
    """The input of the tapped sigmoid, shaped as ``result``, when ``result`` is that sigmoid's output or a
    reshaped view of it that nothing modified since; else None."""
    if tap.last is None or not isinstance(result, torch.Tensor):
        return None
    pre, pre_version, post, post_version = tap.last
    if _version(pre) != pre_version or _version(post) != post_version or pre.shape != post.shape:
        return None
    if result is post:
        logits = pre
    else:
        same_memory = (
            result.untyped_storage().data_ptr() == post.untyped_storage().data_ptr()
            and result.storage_offset() == post.storage_offset()
        )
        if not (
            same_memory and result.numel() == post.numel() and result.is_contiguous() and post.is_contiguous()
        ):
            return None
        logits = pre.reshape(result.shape)  # the sigmoid is elementwise: row-major order is kept
    # Inference tensors count no in-place writes: the values themselves are checked instead (one sigmoid
    # pass).
    if pre_version is None and not torch.equal(torch.sigmoid(logits), result):
        return None
    return logits


def _latent_dim(value: Any, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{owner}'s latent_dim is {value!r}; expected an int >= 1")
    return int(value)


def _check_choice(decoder_output: str) -> None:
    if decoder_output not in _CHOICES:
        raise InputError(
            f"decoder_output must be one of {list(_CHOICES)} (what the decoder returns), "
            f"got {decoder_output!r}"
        )


class VAEAdapter(nn.Module):
    """The interface elbits' loops call, over a client model; see the module docstring.

    Subclasses give ``_encode``, ``_decode_raw`` (the client decoder's own result), ``reparameterize``
    and ``latent_dim``. ``decoder_output="auto"`` decides logits or probabilities once, at construction,
    by decoding z = 0 (eval mode, no grad); every later ``decode`` checks that the decoder still ends in
    that sigmoid and raises a ``RuntimeError`` if it does not.
    """

    likelihood = "bernoulli"
    latent_dim: int
    model: Any  # the client's nn.Module; its submodules are duck-typed

    def __init__(self, model: nn.Module, decoder_output: str = "auto") -> None:
        super().__init__()
        _check_choice(decoder_output)
        self.model = model
        self._tap_sigmoid = decoder_output == "auto"
        self.decoder_output = decoder_output

    def _resolve_decoder_output(self) -> None:
        """Settles ``"auto"``, and refuses probabilities where elbits cannot read them."""
        declared = self.decoder_output != "auto"
        if not declared:
            z = torch.zeros(2, self.latent_dim, **self._param_like())
            with _SigmoidTap() as tap:
                raw = self._probe(lambda: self._decode_raw(z))
            self._tap_sigmoid = _logits_behind(raw, tap) is not None
            self.decoder_output = "logits" if self._tap_sigmoid else "probs"
        if self.decoder_output == "probs" and not probs_input_available():
            why = (
                "is declared to return probabilities"
                if declared
                else "returns probabilities (its result "
                "is not the output of a final sigmoid whose input could be taken as logits)"
            )
            raise InputError(
                f"the decoder of this {type(self.model).__name__} {why}, and this elbits' Bernoulli "
                "likelihood "
                "reads logits only: give a decoder that returns logits with decoder_output='logits'"
            )

    def _param_like(self) -> dict[str, Any]:
        p = next(self.model.parameters(), None)
        if p is None or not p.is_floating_point():
            return {}
        return {"device": p.device, "dtype": p.dtype}

    def _probe(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` in eval mode without grad (no BatchNorm statistics move), the model's mode restored."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return fn()
        finally:
            self.model.train(was_training)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``[B, ...]`` -> ``(mu, logvar)``, each ``[B, latent_dim]``."""
        mu, logvar = self._encode(x)
        for name, t in (("mu", mu), ("logvar", logvar)):
            if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[0] != x.shape[0]:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise InputError(
                    f"the encoder of this {type(self.model).__name__} gave {name} {got}; "
                    f"expected [batch {x.shape[0]}, latent_dim]"
                )
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``[B, latent_dim]`` -> Bernoulli logits (or probabilities, per ``decoder_output``)."""
        if not self._tap_sigmoid:
            return self._decode_raw(z)
        with _SigmoidTap() as tap:
            raw = self._decode_raw(z)
        logits = _logits_behind(raw, tap)
        if logits is None:
            raise RuntimeError(
                f"the decoder of this {type(self.model).__name__} no longer ends in the sigmoid "
                "it ended in at construction; build the adapter again"
            )
        return logits

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    def terms(self, x: torch.Tensor, target: Optional[torch.Tensor] = None, **kw: Any) -> ELBOTerms:
        """:func:`elbits.elbo_terms` of ``forward(x)`` against ``target`` (default ``x``): recon ``[B]``
        and KL ``[B, Z]`` in nats per sample, with the ``input`` this decoder needs."""
        out, mu, logvar = self(x)
        if self.decoder_output == "probs":
            kw["input"] = "probs"
        return api.elbo_terms(out, x if target is None else target, mu, logvar, self.likelihood, **kw)

    def extra_repr(self) -> str:
        return f"decoder_output={self.decoder_output!r}, latent_dim={self.latent_dim}"


# pythae models whose rate is not KL(N(embedding, exp(log_covariance)) || N(0, I)): a learned or non-Gaussian
# prior (VAMP, SVAE's von Mises-Fisher, PoincareVAE's wrapped normal) or a flow after the Gaussian (the
# others).
_OTHER_POSTERIOR_OR_PRIOR = {
    "VAMP": "its prior is a VampPrior mixture",
    "SVAE": "its posterior and prior are von Mises-Fisher / uniform on the sphere",
    "PoincareVAE": "its posterior and prior live on the Poincare ball",
    "VAE_IAF": "an inverse autoregressive flow follows the Gaussian posterior",
    "VAE_LinNF": "a normalizing flow follows the Gaussian posterior",
    "HVAE": "Hamiltonian steps follow the Gaussian posterior",
    "RHVAE": "Riemannian Hamiltonian steps follow the Gaussian posterior",
}


class PythaeAdapter(VAEAdapter):
    """A pythae VAE (``pythae.models.VAE``, ``BetaVAE``, ... with a Gaussian encoder) for elbits.

    The encoder's ``ModelOutput`` gives ``embedding`` (mu) and ``log_covariance`` (logvar); the decoder's
    ``reconstruction`` is a sigmoid's output (pythae's architectures end in ``nn.Sigmoid``), read as logits
    by default. z is drawn as pythae's ``forward`` draws it (``mu + randn_like(std) * std``, in train and
    eval mode alike), so under one seed ``forward`` sees pythae's z. Only ``reconstruction_loss="bce"``
    models are Bernoulli decoders; an ``"mse"`` one is refused, and so are the models whose rate is not the
    KL to N(0, I) (VAMP, SVAE, PoincareVAE, and the flow posteriors VAE_IAF, VAE_LinNF, HVAE, RHVAE).
    """

    def __init__(self, model: nn.Module, decoder_output: str = "auto") -> None:
        _check_choice(decoder_output)
        cfg = getattr(model, "model_config", None)
        if (
            not isinstance(model, nn.Module)
            or cfg is None
            or not all(isinstance(getattr(model, n, None), nn.Module) for n in ("encoder", "decoder"))
        ):
            raise InputError(
                f"PythaeAdapter takes a pythae model (an nn.Module with model_config, encoder and "
                f"decoder), got {type(model).__name__}"
            )
        name = getattr(model, "model_name", "")
        if name in _OTHER_POSTERIOR_OR_PRIOR:
            raise InputError(
                f"pythae {name}: {_OTHER_POSTERIOR_OR_PRIOR[name]}, so elbits' KL to N(0, I) is not "
                "its rate; PythaeAdapter takes Gaussian-posterior, N(0, I)-prior VAEs (VAE, BetaVAE, ...)"
            )
        loss = getattr(cfg, "reconstruction_loss", "bce")
        if loss != "bce":
            raise InputError(
                f"this pythae {type(model).__name__} has reconstruction_loss={loss!r}: its decoder "
                "is not a Bernoulli one; PythaeAdapter needs reconstruction_loss='bce'"
            )
        super().__init__(model, decoder_output)
        self.latent_dim = _latent_dim(getattr(cfg, "latent_dim", None), "this pythae model's model_config")
        shape = getattr(cfg, "input_dim", None)
        if shape is not None:  # an AE's encoder (no log_covariance) fails here rather than at the first batch
            self._probe(lambda: self.encode(torch.zeros(2, *shape, **self._param_like())))
        self._resolve_decoder_output()

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.encoder(x)
        mu, logvar = getattr(out, "embedding", None), getattr(out, "log_covariance", None)
        if mu is None or logvar is None:
            raise InputError(
                f"the encoder of this pythae {type(self.model).__name__} gives no "
                f"{'embedding' if mu is None else 'log_covariance'} (not a Gaussian VAE encoder); "
                "elbits needs q(z|x) = N(embedding, exp(log_covariance))"
            )
        return mu, logvar

    def _decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        out = self.model.decoder(z)
        recon = out.get("reconstruction") if isinstance(out, dict) else None
        if recon is None:
            raise InputError(
                f"the decoder of this pythae {type(self.model).__name__} gave no 'reconstruction' "
                f"(got {type(out).__name__}); expected pythae's ModelOutput(reconstruction=...)"
            )
        return recon

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std


class DisentanglingVAEAdapter(VAEAdapter):
    """A disentangling-vae model (``disvae.models.vae.VAE``: ``forward`` returns ``(recon, (mu, logvar), z)``,
    recon after a sigmoid) for elbits.

    The encoder gives ``(mu, logvar)``; the decoder's final ``torch.sigmoid(convT3(x))`` is read as the logits
    ``convT3(x)`` by default; z comes from the model's own ``reparameterize`` (sampled in train mode, mu in
    eval mode). Its Burgess checkpoints also load directly as :class:`elbits.models.BurgessVAE`
    (:func:`elbits.models.load_disentangling_vae`), which needs no adapter.
    """

    def __init__(self, model: nn.Module, decoder_output: str = "auto") -> None:
        _check_choice(decoder_output)
        if not isinstance(model, nn.Module) or not (
            isinstance(getattr(model, "encoder", None), nn.Module)
            and isinstance(getattr(model, "decoder", None), nn.Module)
            and callable(getattr(model, "reparameterize", None))
        ):
            raise InputError(
                "DisentanglingVAEAdapter takes a disentangling-vae model (an nn.Module with encoder, "
                f"decoder and reparameterize), got {type(model).__name__}"
            )
        super().__init__(model, decoder_output)
        self.latent_dim = _latent_dim(getattr(model, "latent_dim", None), f"this {type(model).__name__}")
        self._resolve_decoder_output()

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.encoder(x)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise InputError(
                f"the encoder of this {type(self.model).__name__} gave {type(out).__name__}; "
                "expected the pair (mu, logvar)"
            )
        return out[0], out[1]

    def _decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decoder(z)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return self.model.reparameterize(mu, logvar)


def adapt(model: nn.Module, decoder_output: str = "auto") -> nn.Module:
    """``model`` ready for elbits: a :class:`BurgessVAE` as it is, a pythae model in a :class:`PythaeAdapter`,
    a disentangling-vae one in a :class:`DisentanglingVAEAdapter`; an :class:`InputError` otherwise."""
    if isinstance(model, (BurgessVAE, VAEAdapter)):
        return model
    if type(model).__module__.split(".")[0] == "pythae" or hasattr(model, "model_config"):
        return PythaeAdapter(model, decoder_output)
    if hasattr(model, "reparameterize") and hasattr(model, "latent_dim"):
        return DisentanglingVAEAdapter(model, decoder_output)
    raise InputError(
        f"elbits.models.adapt knows pythae and disentangling-vae models, not {type(model).__name__}; "
        "give elbits a model with encode(x) -> (mu, logvar) and decode(z) -> logits"
    )
