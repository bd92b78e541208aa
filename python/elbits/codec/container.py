"""The compressed file: a compact binary header, the ANS words, a checksum trailer.

Layout (little endian): ``MAGIC`` (4 bytes) | format version (u8) | fixed fields (``_FIELDS``: likelihood,
image dtype and shape, number of images, latents, window, start-up words, thread count, the model's
fingerprint) | each latent's precision P (u8, ``z_dim`` of them) | the images per step, as runs (LEB128
varints: the number of runs, then size and count of each) | torch version and CPU capability
(length-prefixed ASCII) | payload
length (u32 words) | payload (the coder's u32 words) | the first 8 bytes of the SHA-256 of everything
before it. The header is a few dozen bytes because every image of a small set pays its share of it.
Nothing is decoded from a file that fails any check.
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
VERSION = 2
_DIGEST = 8
_FINGERPRINT = 8
# name, struct code
_FIELDS = (
    ("likelihood", "B"),
    ("dtype", "B"),
    ("channels", "H"),
    ("height", "H"),
    ("width", "H"),
    ("images", "I"),
    ("z_dim", "H"),
    ("latent_window", "d"),
    ("seed_words", "H"),
    ("threads", "H"),
)
_FIXED = struct.Struct("<4sB" + "".join(code for _, code in _FIELDS) + f"{_FINGERPRINT}s")
_DTYPES = ("uint8",)


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:_DIGEST]


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
    """The file's bytes for ``header`` (the keys of ``_FIELDS``, ``shape``, ``latent_bits`` (one P per
    latent), ``steps`` (images per step), ``model_sha256``, ``torch``, ``cpu_capability``) and the coder's
    ``words`` (u32)."""
    c, h, w = header["shape"]
    values = dict(
        header,
        likelihood=DISCRETE.index(header["likelihood"]),
        dtype=_DTYPES.index(header["dtype"]),
        channels=c,
        height=h,
        width=w,
    )
    fixed = _FIXED.pack(
        MAGIC,
        VERSION,
        *(values[name] for name, _ in _FIELDS),
        bytes.fromhex(header["model_sha256"])[:_FINGERPRINT],
    )
    text = b"".join(
        bytes([len(s)]) + s for s in (header["torch"].encode()[:255], header["cpu_capability"].encode()[:255])
    )
    bits = bytes(int(b) for b in header["latent_bits"])
    if len(bits) != header["z_dim"]:
        raise ValueError(f"{len(bits)} latent precisions for {header['z_dim']} latents")
    payload = np.ascontiguousarray(words, dtype="<u4").tobytes()
    body = (
        fixed
        + bits
        + _pack_steps(header["steps"], header["batch"])
        + text
        + struct.pack("<I", len(words))
        + payload
    )
    return body + _digest(body)


def header_bytes(blob: bytes) -> int:
    """Bytes of a file that are not ANS words: magic, version, header, trailer."""
    return len(blob) - 4 * struct.unpack_from("<I", blob, _text_end(blob))[0]


def _bits_end(blob: bytes) -> int:
    return _FIXED.size + _FIXED.unpack_from(blob)[2 + [name for name, _ in _FIELDS].index("z_dim")]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _read_varint(blob: bytes, pos: int) -> tuple[int, int]:
    """``(value, next position)``; position past ``len(blob)`` for a varint cut short."""
    value = shift = 0
    while pos < len(blob) and shift < 35:
        byte = blob[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos
    return value, len(blob) + 1


def _pack_steps(sizes: list[int], batch: int) -> bytes:
    """The step sizes as varints: ``batch``, the count of leading steps given one by one (the ramp-up),
    those sizes; every later step holds ``batch`` images but the last, which holds what is left."""
    explicit = len(sizes) - (1 if sizes and sizes[-1] < batch else 0)
    while explicit and sizes[explicit - 1] == batch:
        explicit -= 1
    if _tail(sizes[:explicit], sum(sizes), batch) != sizes:
        explicit = len(sizes)
    head = sizes[:explicit]
    return _varint(batch) + _varint(explicit) + b"".join(_varint(b) for b in head)


def _tail(head: list[int], images: int, batch: int) -> list[int]:
    left = images - sum(head)
    if batch < 1 or left < 0:
        return head
    return head + [batch] * (left // batch) + ([left % batch] if left % batch else [])


def _read_steps(blob: bytes, pos: int, images: int) -> tuple[list[int], int]:
    batch, pos = _read_varint(blob, pos)
    explicit, pos = _read_varint(blob, pos)
    head: list[int] = []
    for _ in range(min(explicit, len(blob))):
        b, pos = _read_varint(blob, pos)
        head.append(b)
    return _tail(head, images, batch), pos


def _text_end(blob: bytes) -> int:
    """Where the length-prefixed texts end; past ``len(blob)`` for a file cut inside them."""
    pos = _read_steps(blob, _bits_end(blob), 0)[1]
    for _ in range(2):
        if pos >= len(blob):
            return len(blob) + 1
        pos += 1 + blob[pos]
    return pos


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
    if len(blob) < _FIXED.size + 4 + _DIGEST or _text_end(blob) + 4 + _DIGEST > len(blob):
        raise InputError(f"{where}: truncated ({len(blob)} bytes is shorter than its header)")
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    if _digest(body) != digest:
        raise InputError(f"{where}: checksum mismatch: the file is corrupted or truncated")
    fields = _FIXED.unpack_from(body)
    header: dict[str, Any] = dict(zip([name for name, _ in _FIELDS], fields[2:-1]))
    pos = _bits_end(body)
    header["latent_bits"] = list(body[_FIXED.size : pos])
    header["steps"], pos = _read_steps(body, pos, header["images"])
    for key in ("torch", "cpu_capability"):
        n = body[pos]
        header[key] = body[pos + 1 : pos + 1 + n].decode("ascii", "replace")
        pos += 1 + n
    (n_words,) = struct.unpack_from("<I", body, pos)
    payload = body[pos + 4 :]
    if len(payload) != 4 * n_words:
        raise InputError(f"{where}: the payload is {len(payload)} bytes, its header says {4 * n_words}")
    if header["likelihood"] >= len(DISCRETE) or header["dtype"] >= len(_DTYPES):
        raise InputError(f"{where}: unknown likelihood or dtype code in the header")
    header.update(
        likelihood=DISCRETE[header["likelihood"]],
        dtype=_DTYPES[header["dtype"]],
        shape=[header.pop("channels"), header.pop("height"), header.pop("width")],
        model_sha256=fields[-1].hex(),
    )
    return header, np.frombuffer(payload, dtype="<u4").astype(np.uint32)
