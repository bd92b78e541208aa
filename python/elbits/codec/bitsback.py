"""BitsBackCodec: a lossless image codec from a VAE, by bits-back coding with ANS (BB-ANS).

Townsend, Bird & Barber (2019). To code an image x onto a stack of bits, the encoder first *decodes* a
latent z from the stack with the posterior q(z|x): that takes -log2 q(z|x) bits off the stack and picks z
as a posterior sample. It then pushes x with p(x|z) and z with the prior p(z). Net growth:
-log2 p(x|z) - log2 p(z) + log2 q(z|x), whose average over z ~ q is the negative ELBO in bits. The
decoder runs the steps backwards: pops z with the prior, x with p(x|z), and pushes z back with q(z|x) —
returning exactly the bits the encoder took, which is why the posterior's bits come back.

Images are coded in steps of a batch each, so that the networks run batched and the coder is called
once per group of a step's posteriors (pixels: once per image, which costs the same): a step pops the
latents of all its images, then pushes their pixels and their latents. The first steps are small (a
batch of 1, growing with the images coded so far): popping needs bits on the stack, and a small
deterministic seed of random words provides them for the first image. That seed is the start-up cost,
reported apart from the images' net bits.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar, Union

import constriction
import numpy as np
import torch
from torch import nn

from .. import units
from ..errors import InputError
from ..logprobs import discrete_likelihood
from . import container, pixels
from .latents import Buckets, check_bits, check_window, choose_bits

_STACK = constriction.stream.stack
_UNIFORM = constriction.stream.model.Uniform()  # each latent's bucket count passed per symbol
_T = TypeVar("_T")
_SEED_STATE = 0x656C62697473  # the seed words are a constant of the format, never user data


@dataclass
class CodecStats:
    """What a call of :meth:`BitsBackCodec.encode` produced; every figure is bits unless named bytes.

    ``net_bits`` ``[N]``: how much each image grew the stack (pixels + latents under the prior − latents
    under the posterior), in the images' original order. The pixels' bits are each image's own; one coder
    call pops the posteriors of many images, so its exact cost is split over them in proportion to their
    bits under the unquantised tables: the mean over images is exact, each image's latent figure a share.
    ``startup_bits``: the seed words the first images' posteriors were decoded from; ``header_bytes``:
    everything but the coder's words;
    ``file_bytes``: the whole file. ``nelbo_bits`` ``[N]``: the model's −ELBO of the same images (KL plus
    the NLL averaged over ``elbo_samples`` posterior samples) when it was computed, for comparison.
    """

    n_images: int
    dims: int
    net_bits: np.ndarray
    startup_bits: int
    header_bytes: int
    file_bytes: int
    seconds: float
    nelbo_bits: Optional[np.ndarray] = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def net_bits_per_image(self) -> float:
        return float(self.net_bits.mean())

    @property
    def file_bits_per_image(self) -> float:
        return 8.0 * self.file_bytes / self.n_images

    def summary(self) -> dict[str, float]:
        """The headline figures: bits/image and bits/dim of the net rate and of the whole file, next to
        the model's −ELBO when known."""
        out = {
            "images": float(self.n_images),
            "net_bits_per_image": self.net_bits_per_image,
            "net_bits_per_dim": self.net_bits_per_image / self.dims,
            "file_bits_per_image": self.file_bits_per_image,
            "file_bits_per_dim": self.file_bits_per_image / self.dims,
            "startup_bits": float(self.startup_bits),
            "header_bytes": float(self.header_bytes),
            "file_bytes": float(self.file_bytes),
            "images_per_second": self.n_images / max(self.seconds, 1e-12),
        }
        if self.nelbo_bits is not None:
            nelbo = float(self.nelbo_bits.mean())
            out.update(
                nelbo_bits_per_image=nelbo,
                nelbo_bits_per_dim=nelbo / self.dims,
                net_over_nelbo=self.net_bits_per_image / nelbo,
            )
        return out


#: a step takes at most this share of the stack's bits: its posteriors' bits are estimated, and a stack that
#: runs dry hands out zeros instead of bits that come back, which costs the file what it took
_STACK_SHARE = 0.8
_STACK_MARGIN_BITS = 64
#: a step's images are guessed to take this much more than the previous step's did, so few are shrunk
_GUESS_MARGIN = 1.05


def ramp_step(start: int, images: int, batch: int, ramp: float) -> int:
    """The most images the step that begins at image ``start`` (of ``images``) may hold: ``batch``, ``ramp``
    times the images coded so far, the images left; at least 1."""
    return max(1, min(batch, images - start, int(start * ramp)))


def stack_fit(pop_bits: np.ndarray, stack_bits: int) -> int:
    """How many of the images whose posteriors take ``pop_bits`` (estimated bits each, in coding order) the
    stack's ``stack_bits`` can give their posterior samples."""
    room = _STACK_SHARE * (stack_bits - _STACK_MARGIN_BITS)
    return int(np.searchsorted(np.cumsum(pop_bits), room, side="right"))


def plan_step(pop_bits: np.ndarray, start: int, stack_bits: int, batch: int, ramp: float) -> int:
    """Images in the step that begins at image ``start``: as many as the stack's ``stack_bits`` can give
    their posteriors (``pop_bits`` ``[N]``, estimated bits each), at most :func:`ramp_step`, at least 1.
    The encoder records the sizes, so the decoder needs no estimate."""
    cap = ramp_step(start, len(pop_bits), batch, ramp)
    return max(1, min(cap, stack_fit(pop_bits[start : start + cap], stack_bits)))


def _information(table: np.ndarray, total: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """-log2 of each row's mass at its decoded symbol over the row's ``total``, bits ``[rows]``."""
    p = table[np.arange(len(symbols)), symbols] / total
    return -np.log2(np.maximum(p, pixels._FLOOR))


def _share(guess: np.ndarray, exact: int) -> np.ndarray:
    """The stack's ``exact`` growth of one coder call, split over its images in proportion to ``guess``
    (their bits under the unquantised tables): each image's share, whose sum is exactly what the call
    cost, so the mean over images is the file's own."""
    total = float(guess.sum())
    if total <= 0.0:
        return np.full(len(guess), exact / len(guess))
    return guess * (exact / total)


def _own_copy(model: nn.Module) -> Optional[nn.Module]:
    """The codec's own copy of ``model``, which keeps it on the parameters its fingerprint was taken from
    and may be laid out channels-last; None where ``model`` cannot be copied."""
    try:
        return copy.deepcopy(model)
    except (RuntimeError, TypeError, ValueError, AttributeError, copy.Error):
        return None


def _layout(net: nn.Module, channels_last: bool) -> None:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net.to(memory_format=fmt)  # type: ignore[call-overload]


def default_input(likelihood: str, model: Any = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """What an encoder is fed: the uint8 levels themselves to a model that declares ``reads_levels = True``
    (its ``encode`` scales them, as :class:`elbits.models.ColourVAE` does); else binary images as floats in
    {0, 1} and 8-bit levels as x = l/127.5 − 1 in [−1, 1], the data convention of the discretized
    likelihoods."""
    if getattr(model, "reads_levels", False) is True:
        return lambda x: x
    if likelihood == "bernoulli":
        return lambda x: x.to(torch.float32)
    return lambda x: x.to(torch.float32) / 127.5 - 1.0


class BitsBackCodec:
    """A lossless codec for images from a VAE: ``blob = codec.encode(images)``, ``codec.decode(blob)``.

    - ``model``: has ``encode(x) -> (mu, logvar)`` (``[B, Z]`` each, q(z|x) = N(mu, exp(logvar))) and
      ``decode(z) -> params`` (the likelihood's parameters for ``images``' shape); run in eval mode, float32,
      on the CPU.
    - ``likelihood``: ``bernoulli`` (images {0, 1}), ``categorical256``, ``logistic_mixture`` (1 or 3
      channels, with its channel coupling) or ``discretized_gaussian`` (levels 0..255). A density
      (``continuous_bernoulli``, ``gaussian``, ``laplace``) is refused: its NLL is no code length.
    - ``latent_bits``: P (default 12), each latent dimension's prior is cut into 2^P buckets of equal
      mass (a latent costs P bits under the prior); ``"auto"`` picks a P per dimension from the
      posteriors of the images coded, the smallest that gives each of them at least
      :data:`~elbits.codec.latents.BUCKETS_PER_SIGMA` buckets per sigma (the file records the P's; on
      the beta = 1 dSprites checkpoint it codes 0.4 % above P = 12, see docs/codec.md).
      ``latent_window``: the posterior is coded over the buckets within this many sigmas of its mean.
      Decoding takes both from the file.
    - ``batch``: images per network call once the stack is warm; ``ramp``: how fast steps grow to it (a
      step has at most ``ramp`` times the images coded before it, and no more than the stack's bits can
      give posterior samples).
    - ``to_input``: maps uint8 images to what ``model.encode`` takes (default :func:`default_input`).

    Decoding needs bit-identical probabilities: the same model (its fingerprint is in the file), torch
    version, CPU capability and thread count as encoding; the file records them and :meth:`decode`
    refuses a mismatch unless ``strict=False``. The batch composition is fixed by the file.

    The codec runs its own copy of ``model``, taken at construction (channels-last where the model runs
    so, the CPU's fast layout for convolutions): training ``model`` afterwards does not change what this
    codec codes, as its fingerprint would not either. The copy costs the model's memory once more; a
    model that cannot be deep-copied is run itself, in its own layout.
    """

    def __init__(
        self,
        model: nn.Module,
        likelihood: str,
        *,
        latent_bits: Union[int, str] = 12,
        latent_window: float = 5.0,
        batch: int = 256,
        ramp: float = 0.5,
        seed_words: int = 4,
        to_input: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ) -> None:
        if not (callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))):
            raise InputError(
                "the model needs encode(x) -> (mu, logvar) and decode(z) -> likelihood parameters"
            )
        self.likelihood = discrete_likelihood(likelihood)
        self.latent_bits: Union[int, str] = "auto" if latent_bits == "auto" else check_bits(latent_bits)
        self.latent_window = check_window(latent_window)
        for name, value, lo, hi in (
            ("batch", batch, 1, container.MAX_BATCH),
            ("seed_words", seed_words, 1, 4096),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise InputError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
        if not (isinstance(ramp, (int, float)) and 0.0 < ramp <= 64.0):
            raise InputError(f"ramp must be a number in (0, 64], got {ramp!r}")
        self.model: Any = model  # duck-typed: encode() and decode()
        own = _own_copy(model)
        self._net: Any = model if own is None else own
        self._copied = own is not None
        self._channels_last = False
        self.batch, self.ramp, self.seed_words = batch, float(ramp), seed_words
        self.to_input = to_input or default_input(self.likelihood, model)
        self.fingerprint = container.model_fingerprint(model)
        self.stats: Optional[CodecStats] = None

    # ---- the settings that make both sides compute the same probabilities

    def _environment(self) -> dict[str, Any]:
        return {
            "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
        }

    def _environment_digest(self) -> tuple[str, str]:
        """``(digest as files store it, the words it was taken of)``."""
        env = self._environment()
        return (
            container.environment_digest(env["torch"], env["cpu_capability"]),
            f"torch {env['torch']}, CPU capability {env['cpu_capability']}",
        )

    @contextmanager
    def _deterministic(self, threads: int) -> Iterator[None]:
        was_training, old_threads = self._net.training, torch.get_num_threads()
        try:
            self._net.eval()
            torch.set_num_threads(threads)
            with torch.inference_mode():
                yield
        finally:
            torch.set_num_threads(old_threads)
            self._net.train(was_training)

    @staticmethod
    def _seed(words: int) -> np.ndarray:
        return np.random.default_rng(_SEED_STATE).integers(1, 2**32, size=words, dtype=np.uint32)

    def _input(self, x: torch.Tensor) -> Any:
        v = self.to_input(x)
        if self._channels_last and isinstance(v, torch.Tensor) and v.dim() == 4:
            return v.contiguous(memory_format=torch.channels_last)
        return v

    def _settle_layout(self, probe: Callable[[], _T]) -> _T:
        """Runs ``probe`` (the first encoder and decoder calls of an encode, decode or −ELBO) with the
        networks channels-last (oneDNN's fast layout for convolutions on the CPU: the Burgess decoder runs
        ~1.5x faster), or in the default layout where the model cannot run so (a ``.view`` of a
        convolution's output). The choice depends on the model and the images' shape alone, never on
        what ran before, so encoder and decoder make the same one and compute the same probabilities."""
        if not self._copied:  # the user's own model: its layout is not the codec's to change
            return probe()
        self._set_layout(True)
        try:
            return probe()
        except (RuntimeError, InputError):
            self._set_layout(False)
            try:
                return probe()
            except (RuntimeError, InputError):
                pass
            self._set_layout(True)
            return probe()  # raises what channels-last raised

    def _set_layout(self, channels_last: bool) -> None:
        if channels_last != self._channels_last:
            _layout(self._net, channels_last)
            self._channels_last = channels_last

    def _posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self._net.encode(self._input(x))
        if mu.shape != logvar.shape or mu.dim() != 2 or mu.shape[0] != x.shape[0]:
            raise InputError(
                f"model.encode must return mu and logvar [B, Z], got {list(mu.shape)} and "
                f"{list(logvar.shape)} for {x.shape[0]} images"
            )
        return mu, logvar

    def _params(self, buckets: Buckets, index: np.ndarray) -> torch.Tensor:
        return self._net.decode(buckets.z(index)).to(torch.float32)

    # ---- encoding

    def check_images(self, images: Any) -> torch.Tensor:
        """``images`` as a uint8 tensor ``[N, C, H, W]``; :class:`InputError` for anything else."""
        x = torch.as_tensor(images) if isinstance(images, np.ndarray) else images
        if not isinstance(x, torch.Tensor):
            raise InputError(
                f"images must be a tensor or numpy array [N, C, H, W], got {type(images).__name__}"
            )
        if x.dim() == 3:
            x = x[:, None]
        if x.dim() != 4 or x.shape[0] == 0 or x[0].numel() == 0:
            raise InputError(f"images must be [N, C, H, W] (or [N, H, W]) with N >= 1, got {list(x.shape)}")
        if x.is_floating_point() or x.is_complex():
            raise InputError(f"images must hold integer levels (uint8), got {x.dtype}")
        top = 1 if self.likelihood == "bernoulli" else 255
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > top:
            raise InputError(
                f"image levels must be in 0..{top} for likelihood {self.likelihood}, got {lo}..{hi}"
            )
        return x.to(torch.uint8).cpu().contiguous()

    def encode(
        self, images: Any, *, elbo_samples: int = 0, progress: Optional[Callable[[int], None]] = None
    ) -> bytes:
        """The compressed bytes of ``images`` (uint8 ``[N, C, H, W]``). Sets :attr:`stats`; with
        ``elbo_samples`` > 0 it also holds the model's −ELBO of the images (D over that many samples)."""
        x = self.check_images(images)
        if -(-x.shape[0] // self.batch) > container.MAX_STEPS // 2:
            raise InputError(
                f"{x.shape[0]} images in batches of {self.batch} are more steps than a file holds "
                f"({container.MAX_STEPS}): raise batch"
            )
        env = self._environment()
        t0 = time.perf_counter()
        n = x.shape[0]
        net = np.zeros(n, dtype=np.float64)
        pixel_bits = np.zeros(n, dtype=np.float64)
        coder = _STACK.AnsCoder(self._seed(self.seed_words))
        with self._deterministic(env["threads"]):
            z_dim = self._settle_layout(lambda: self._check_layout(x[:1]))
            # "auto" takes a first look at every posterior to pick the precisions, and sizes the steps on
            # it; with a fixed P each step sizes itself on its own posteriors. The coded posteriors always
            # come from each step's own batch, as the decoder computes them.
            if self.latent_bits == "auto":
                glance = [self._posterior(chunk) for chunk in x.split(self.batch)]
                mu_all, logvar_all = torch.cat([m for m, _ in glance]), torch.cat([v for _, v in glance])
                bits = choose_bits(mu_all, logvar_all)
            else:
                bits = np.full(z_dim, self.latent_bits, dtype=np.int64)
            buckets = Buckets(bits, self.latent_window)
            pop_bits = buckets.pop_bits(mu_all, logvar_all) if self.latent_bits == "auto" else None
            held: Optional[np.ndarray] = None  # the previous step's latents, not yet pushed
            per_image: Optional[float] = None
            sizes: list[int] = []
            start = 0
            while start < n:
                cap = ramp_step(start, n, self.batch, self.ramp)
                stack = coder.num_valid_bits()
                posterior: Optional[tuple[torch.Tensor, torch.Tensor]] = None
                if pop_bits is None:
                    # the previous step's posteriors guess how many of this step's fit, so the network
                    # mostly runs once a step; a step they do not fit is shrunk and run again
                    if per_image is not None:
                        cap = max(1, min(cap, stack_fit(np.full(cap, per_image), stack)))
                    posterior = self._posterior(x[start : start + cap])
                    estimate = buckets.pop_bits(*posterior)
                    per_image = _GUESS_MARGIN * float(estimate.mean())
                else:
                    estimate = pop_bits[start : start + cap]
                size = max(1, min(cap, stack_fit(estimate, stack)))
                if posterior is None or size < cap:  # on the step's own batch, as the decoder has it
                    posterior = self._posterior(x[start : start + size])
                sizes.append(size)
                xs = x[start : start + size]
                # bits back: the step's posterior samples, decoded off the stack
                flat = np.zeros(size * z_dim, dtype=np.int64)
                guess = np.zeros(size, dtype=np.float64)
                before = coder.num_valid_bits()
                for rows, first, table, total in buckets.posterior(*posterior):
                    sym = coder.decode(pixels._CATEGORICAL, table)
                    flat[rows] = first + sym
                    guess += np.bincount(rows // z_dim, _information(table, total, sym), minlength=size)
                net[start : start + size] -= _share(guess, before - coder.num_valid_bits())
                index = flat.reshape(size, z_dim)
                # The previous step's latents go on only now, under this step's pixels: so this step's
                # posteriors were decoded from the previous step's pixel bits (compressed data, close to
                # random) rather than from its latent indices, which are far from random bits wherever
                # the model's aggregate posterior is far from its prior (docs/codec.md).
                if held is not None:
                    self._push_prior(coder, held, buckets)
                held = index
                params = self._params(buckets, index)
                context = xs.to(torch.int64)
                for stage in reversed(pixels.stages(self.likelihood, x.shape[1])):
                    for lo, hi in pixels.chunks(size, params[0].numel()):
                        table = pixels.tables(params[lo:hi], self.likelihood, context[lo:hi], stage)
                        levels = context[lo:hi, stage].reshape(hi - lo, -1).numpy()
                        pixel_bits[start + lo : start + hi] += pixels.push(coder, table, levels)
                # the prior is uniform over 2^P buckets: exactly P bits a latent
                net[start : start + size] += float(bits.sum())
                start += size
                if progress is not None:
                    progress(size)
            assert held is not None
            self._push_prior(coder, held, buckets)
        header = {
            "likelihood": self.likelihood,
            "shape": list(x.shape[1:]),
            "dtype": "uint8",
            "images": n,
            "z_dim": z_dim,
            "latent_bits": bits.tolist(),
            "latent_window": self.latent_window,
            "steps": sizes,
            "batch": self.batch,
            "seed_words": self.seed_words,
            "model_sha256": self.fingerprint,
            "environment": self._environment_digest()[0],
            "threads": env["threads"],
        }
        net += pixel_bits
        blob = container.pack(header, coder.get_compressed())
        seconds = time.perf_counter() - t0
        self.stats = CodecStats(
            n,
            int(x[0].numel()),
            net,
            32 * self.seed_words,
            container.header_bytes(blob),
            len(blob),
            seconds,
            extra={"pixel_bits": pixel_bits, "latent_bits": net - pixel_bits, "latent_precision": bits},
        )
        if elbo_samples:
            self.stats.nelbo_bits = self.nelbo_bits(x, elbo_samples)
        return blob

    def _check_layout(self, x: torch.Tensor) -> int:
        """One encoder call on ``x`` and one decoder call on a probe z: the parameters must be a table for
        every subpixel of the images' shape, the coupling must fit the channels. The number of latents."""
        try:
            mu, _logvar = self._posterior(x)
        except (RuntimeError, ValueError) as e:
            raise InputError(f"the model cannot encode images {list(x.shape[1:])}: {e}") from None
        if mu.shape[1] < 1:
            raise InputError("the model has no latent dimensions")
        params = self._net.decode(torch.zeros(mu.shape, dtype=torch.float32)).to(torch.float32)
        try:
            for stage in pixels.stages(self.likelihood, x.shape[1]):
                table = pixels.tables(params, self.likelihood, x.to(torch.int64), stage)
                if table.shape[1] != x[0, stage].numel():
                    raise InputError(f"{table.shape[1]} tables for {x[0, stage].numel()} subpixels")
        except (RuntimeError, InputError) as e:
            raise InputError(
                f"the decoder's output {list(params.shape)} is not {self.likelihood} parameters for "
                f"images {list(x.shape[1:])}: {e}"
            ) from None
        return int(mu.shape[1])

    # ---- decoding

    def _check_file_layout(self, shape: tuple[int, ...], z_dim: int) -> None:
        """A file whose checksum holds but whose image shape or latent count this model cannot have written
        (a crafted one) is refused before anything is allocated for its images."""
        bad = InputError(
            f"the file's images {list(shape)} with {z_dim} latents do not fit this model (corrupt file)"
        )
        try:
            params = self._net.decode(torch.zeros((1, z_dim), dtype=torch.float32)).to(torch.float32)
        except (RuntimeError, ValueError):
            raise bad from None
        # every likelihood has at least one parameter a subpixel, which bounds the probe below
        if int(np.prod(shape)) > params[0].numel():
            raise bad
        # a decoder's spatial output is the images' rows and columns: a file that rearranges them is refused
        if params.dim() >= 4 and tuple(params.shape[-2:]) != tuple(shape[-2:]):
            raise bad
        try:
            if self._check_layout(torch.zeros((1, *shape), dtype=torch.uint8)) != z_dim:
                raise bad
        except InputError:
            raise bad from None

    def decode(
        self, blob: bytes, *, strict: bool = True, progress: Optional[Callable[[int], None]] = None
    ) -> torch.Tensor:
        """The images (uint8 ``[N, C, H, W]``, bit-exact) of a file written by :meth:`encode` with this
        model. The latent precisions and window are the file's."""
        header, words = container.unpack(blob)
        self._check_header(header, strict)
        shape = tuple(int(s) for s in header["shape"])
        n = int(header["images"])
        buckets = Buckets(header["latent_bits"], header["latent_window"])
        sizes = [int(b) for b in header["steps"]]
        if sum(sizes) != n or min(sizes, default=0) < 1:
            raise InputError("the compressed data's step sizes do not add up to its images (corrupt file)")
        coder = _STACK.AnsCoder(words.copy())
        with self._deterministic(int(header["threads"])):
            self._settle_layout(lambda: self._check_file_layout(shape, int(header["z_dim"])))
            # the steps' images as they decode, last step first: a file's claims cost memory only as they
            # turn out true
            decoded: list[torch.Tensor] = []
            index = self._pop_prior(coder, sizes[-1], buckets)
            for s in reversed(range(len(sizes))):
                size = sizes[s]
                params = self._params(buckets, index)
                context = torch.zeros((size, *shape), dtype=torch.int64)
                for stage in pixels.stages(self.likelihood, shape[0]):
                    for lo, hi in reversed(pixels.chunks(size, params[0].numel())):
                        table = pixels.tables(params[lo:hi], self.likelihood, context[lo:hi], stage)
                        levels = torch.from_numpy(pixels.pop(coder, table).astype(np.int64))
                        context[lo:hi, stage] = levels.reshape(context[lo:hi, stage].shape)
                xs = context.to(torch.uint8)
                latents = index.reshape(-1)
                if s > 0:
                    index = self._pop_prior(coder, sizes[s - 1], buckets)
                # give the posterior's bits back, the groups in the reverse of the encoder's order
                for rows, first, table, _total in reversed(buckets.posterior(*self._posterior(xs))):
                    sym = latents[rows] - first
                    if (sym < 0).any() or (sym >= table.shape[1]).any():
                        raise InputError("the compressed data is inconsistent with this model (corrupt file)")
                    coder.encode_reverse(sym.astype(np.int32), pixels._CATEGORICAL, table)
                decoded.append(xs)
                if progress is not None:
                    progress(size)
        if not np.array_equal(coder.get_compressed(), self._seed(int(header["seed_words"]))):
            raise InputError(
                "the compressed data did not decode back to its start-up words (corrupt file or a "
                "different model/environment)"
            )
        return torch.cat(decoded[::-1])

    @staticmethod
    def _push_prior(coder: Any, index: np.ndarray, buckets: Buckets) -> None:
        sizes = np.tile(buckets.size.astype(np.int32), len(index))
        coder.encode_reverse(buckets.scramble(index).reshape(-1).astype(np.int32), _UNIFORM, sizes)

    @staticmethod
    def _pop_prior(coder: Any, images: int, buckets: Buckets) -> np.ndarray:
        code = coder.decode(_UNIFORM, np.tile(buckets.size.astype(np.int32), images))
        return buckets.unscramble(code.astype(np.int64).reshape(images, len(buckets.size)))

    def _check_header(self, header: dict[str, Any], strict: bool) -> None:
        if not self.fingerprint.startswith(header.get("model_sha256", "-")):
            raise InputError("the file was written with a different model (its parameters' SHA-256 differs)")
        if header.get("likelihood") != self.likelihood:
            raise InputError(
                f"the file was written with likelihood {header.get('likelihood')!r}, this codec has "
                f"{self.likelihood!r}"
            )
        digest, here = self._environment_digest()
        if strict and header.get("environment") != digest:
            raise InputError(
                f"the file was written under another torch version or CPU capability than this {here}: "
                "the probabilities may differ by a rounding, which ANS cannot survive "
                "(decode where it was encoded, or pass strict=False at your own risk)"
            )

    # ---- the figure to compare with

    def nelbo_bits(self, images: Any, samples: int = 4, seed: int = 0) -> np.ndarray:
        """The model's −ELBO of each image, bits: KL(q(z|x) ‖ N(0, I)) plus the NLL averaged over
        ``samples`` draws z ~ q(z|x) (float64 reference math, the codec's own tables)."""
        from .. import reference as ref

        x = self.check_images(images)
        g = torch.Generator().manual_seed(seed)
        out = []
        with self._deterministic(torch.get_num_threads()):
            self._settle_layout(lambda: self._net.decode(self._posterior(x[:1])[0]))
            for chunk in x.split(self.batch):
                mu, logvar = self._net.encode(self._input(chunk))
                kl = ref.gaussian_kl(mu, logvar).sum(1)
                d = torch.zeros_like(kl)
                target = chunk if self.likelihood != "bernoulli" else chunk.to(torch.float64)
                if self.likelihood == "categorical256":
                    target = chunk.to(torch.int64)
                for _ in range(samples):
                    eps = torch.randn(mu.shape, generator=g)
                    z = mu + eps * torch.exp(0.5 * logvar)
                    params = self._net.decode(z)
                    if self.likelihood == "categorical256":
                        params = params.reshape(params.shape[0], 256, *chunk.shape[1:])
                    d += ref.elbo_terms(params, target, mu, logvar, self.likelihood).recon
                out.append(units.nats_to_bits(kl + d / samples))
        return torch.cat(out).numpy()
