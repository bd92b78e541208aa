"""The compressed file: a compact binary header, the ANS words, a checksum trailer.

Layout (little endian; "varint" is unsigned LEB128): ``MAGIC`` (4 bytes) | format version (u8) |
likelihood and image dtype (u8 codes) | channels, height, width, number of images, latents (varints) |
latent window (float32, sigmas) | start-up words, thread count (varints) | the first 8 bytes of the
SHA-256 of the model's parameters | the first 4 bytes of the SHA-256 of the torch version and CPU
capability | the latents' precision: one P (u8) for all, or 0 and then each latent's P (u8, ``z_dim`` of
them) | the images per step (varints: ``batch``, the count of leading steps given one by one, their sizes;
every later step holds ``batch`` images but the last, which holds what is left) | payload (the coder's
u32 words, to the trailer) | the first 8 bytes of the SHA-256 of everything before it.

The header is a few dozen bytes because every image of a small set pays its share of it; the payload's
length is what is left between header and trailer, which the checksum covers. Nothing is decoded from a
file that fails any check.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..logprobs import DISCRETE

MAGIC = b"ELBB"
VERSION = 3
_DIGEST = 8
_FINGERPRINT = 8
_ENVIRONMENT = 4
_DTYPES = ("uint8",)
_CODES = struct.Struct("<BB")
_WINDOW = struct.Struct("<f")
#: magic, version, codes, one byte per varint, window, fingerprints, P, batch and count of steps, trailer
_SHORTEST = len(MAGIC) + 1 + 2 + 5 + 4 + 2 + _FINGERPRINT + _ENVIRONMENT + 1 + 2 + _DIGEST
#: the varint fields after the codes, in file order, and the two after the window
_SIZES = ("channels", "height", "width", "images", "z_dim")
_COUNTS = ("seed_words", "threads")
#: a file codes at most this many steps (batches of images), so that what a file claims stays cheap to read
MAX_STEPS = 1 << 20
#: images per step, at most (the codec's largest ``batch``)
MAX_BATCH = 65536
#: the range a file may give each varint field: what a file claims is checked before it is used
_LIMITS = dict(
    channels=(1, 65535),
    height=(1, 65535),
    width=(1, 65535),
    images=(1, 2**32 - 1),
    z_dim=(1, 65535),
    seed_words=(1, 4096),
    threads=(1, 1024),
)


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:_DIGEST]


def environment_digest(torch_version: str, cpu_capability: str) -> str:
    """What a file records of where it was encoded (hex): a digest of the torch version and CPU capability,
    the two things besides the model and thread count that decide how the probabilities round."""
    return hashlib.sha256(f"{torch_version}|{cpu_capability}".encode()).digest()[:_ENVIRONMENT].hex()


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 (hex) over the model's state_dict: every key, dtype, shape and value, in key order."""
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def pack(header: dict[str, Any], words: np.ndarray) -> bytes:
    """The file's bytes for ``header`` (``likelihood``, ``dtype``, ``shape``, ``images``, ``z_dim``,
    ``latent_window`` (float32-representable), ``seed_words``, ``threads``, ``model_sha256``,
    ``environment`` (:func:`environment_digest`), ``latent_bits`` (one P per latent), ``steps`` (images per
    step), ``batch``) and the coder's ``words`` (u32)."""
    c, h, w = header["shape"]
    sizes = dict(channels=c, height=h, width=w, images=header["images"], z_dim=header["z_dim"])
    window = _WINDOW.pack(header["latent_window"])
    if _WINDOW.unpack(window)[0] != header["latent_window"]:
        raise ValueError(f"latent_window {header['latent_window']!r} is not a float32")
    _check_steps(header["steps"], header["batch"])
    bits = [int(b) for b in header["latent_bits"]]
    if len(bits) != header["z_dim"] or not all(1 <= b <= 255 for b in bits):
        raise ValueError(f"latent precisions {bits} for {header['z_dim']} latents")
    body = b"".join(
        [
            MAGIC,
            bytes([VERSION]),
            _CODES.pack(DISCRETE.index(header["likelihood"]), _DTYPES.index(header["dtype"])),
            *(_varint(sizes[k]) for k in _SIZES),
            window,
            *(_varint(header[k]) for k in _COUNTS),
            bytes.fromhex(header["model_sha256"])[:_FINGERPRINT],
            bytes.fromhex(header["environment"])[:_ENVIRONMENT],
            bytes([bits[0]]) if len(set(bits)) == 1 else bytes([0, *bits]),
            _pack_steps(header["steps"], header["batch"]),
            np.ascontiguousarray(words, dtype="<u4").tobytes(),
        ]
    )
    return body + _digest(body)


def _check_steps(steps: list[int], batch: int) -> None:
    if len(steps) > MAX_STEPS or not all(1 <= b <= batch <= MAX_BATCH for b in steps):
        raise ValueError(f"steps of 1..batch <= {MAX_BATCH} images, at most {MAX_STEPS} of them")


def header_bytes(blob: bytes) -> int:
    """Bytes of a file that are not ANS words: magic, version, header, trailer."""
    return len(blob) - 4 * _words(blob)


def _words(blob: bytes) -> int:
    return (len(blob) - _DIGEST - _Reader(blob).header()[1]) // 4


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"a varint cannot hold {value}")
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _pack_steps(sizes: list[int], batch: int) -> bytes:
    explicit = len(sizes) - (1 if sizes and sizes[-1] < batch else 0)
    while explicit and sizes[explicit - 1] == batch:
        explicit -= 1
    if _tail(sizes[:explicit], sum(sizes), batch) != sizes:
        explicit = len(sizes)
    return _varint(batch) + _varint(explicit) + b"".join(_varint(b) for b in sizes[:explicit])


def _tail(head: list[int], images: int, batch: int) -> list[int]:
    left = images - sum(head)
    if batch < 1 or left < 0:
        return head
    return head + [batch] * (left // batch) + ([left % batch] if left % batch else [])


class _Truncated(Exception):
    pass


class _Corrupt(Exception):
    pass


class _Reader:
    """Reads the header fields in file order; :class:`_Truncated` for a file that ends inside them."""

    def __init__(self, blob: bytes) -> None:
        self.blob, self.pos = blob, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.blob):
            raise _Truncated
        out = self.blob[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self) -> int:
        value = shift = 0
        while shift < 35:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
        raise _Truncated  # no field is this long: a file of garbage

    def header(self) -> tuple[dict[str, Any], int]:
        """``(fields, where the payload starts)``, the codes still numbers."""
        out: dict[str, Any] = {}
        self.take(len(MAGIC) + 1)
        out["likelihood"], out["dtype"] = _CODES.unpack(self.take(_CODES.size))
        for key in _SIZES:
            out[key] = self.bounded(key)
        (out["latent_window"],) = _WINDOW.unpack(self.take(_WINDOW.size))
        for key in _COUNTS:
            out[key] = self.bounded(key)
        out["model_sha256"] = self.take(_FINGERPRINT).hex()
        out["environment"] = self.take(_ENVIRONMENT).hex()
        first = self.take(1)[0]
        out["latent_bits"] = [first] * out["z_dim"] if first else list(self.take(out["z_dim"]))
        batch, explicit = self.varint(), self.varint()
        if explicit > len(self.blob):
            raise _Truncated
        if not 1 <= batch <= MAX_BATCH or explicit > MAX_STEPS:
            raise _Corrupt(f"its batch of {batch} images or its {explicit} steps are out of range")
        head = [self.varint() for _ in range(explicit)]
        left = out["images"] - sum(head)
        if left < 0 or explicit + -(-left // batch) > MAX_STEPS or not all(1 <= b <= batch for b in head):
            raise _Corrupt("its step sizes do not add up to its images")
        out["steps"], out["batch"] = _tail(head, out["images"], batch), batch
        return out, self.pos

    def bounded(self, key: str) -> int:
        value, (lo, hi) = self.varint(), _LIMITS[key]
        if not lo <= value <= hi:
            raise _Corrupt(f"the header's {key} {value} is outside {lo}..{hi}")
        return value


def unpack(blob: bytes, where: str = "the compressed data") -> tuple[dict[str, Any], np.ndarray]:
    """``(header, words)`` of a file written by :func:`pack`; :class:`InputError` naming ``where`` for a
    file of another kind or version, a truncated or corrupted one."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise InputError(f"{where}: expected bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    if not blob.startswith(MAGIC):
        raise InputError(f"{where}: not an elbits bits-back file (no {MAGIC!r} magic number at its start)")
    if len(blob) > len(MAGIC) and blob[len(MAGIC)] != VERSION:
        raise InputError(
            f"{where}: elbits bits-back format version {blob[len(MAGIC)]}; this elbits reads "
            f"version {VERSION}"
        )
    if len(blob) < _SHORTEST:
        raise InputError(f"{where}: truncated ({len(blob)} bytes is shorter than its header)")
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    if _digest(body) != digest:
        raise InputError(f"{where}: checksum mismatch: the file is corrupted or truncated")
    # past the checksum, a header that does not parse was written so on purpose
    try:
        header, start = _Reader(body).header()
    except _Truncated:
        raise InputError(f"{where}: the header ends before its fields do (corrupt file)") from None
    except _Corrupt as e:
        raise InputError(f"{where}: {e} (corrupt file)") from None
    payload = body[start:]
    if len(payload) % 4:
        raise InputError(f"{where}: the payload is {len(payload)} bytes, not whole 32-bit words")
    if header["likelihood"] >= len(DISCRETE) or header["dtype"] >= len(_DTYPES):
        raise InputError(f"{where}: unknown likelihood or dtype code in the header")
    header.update(
        likelihood=DISCRETE[header["likelihood"]],
        dtype=_DTYPES[header["dtype"]],
        shape=[header.pop("channels"), header.pop("height"), header.pop("width")],
    )
    return header, np.frombuffer(payload, dtype="<u4").astype(np.uint32)
