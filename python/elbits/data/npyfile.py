"""Reading ``.npy`` files and ``.npz`` archives a user gives: pickling never on, every size checked first.

``np.load(allow_pickle=True)`` runs whatever a pickled member asks for, and numpy trusts a header's shape.
Here an object dtype, a header promising more or fewer bytes than the file holds, a file named ``.npz``
that is no zip, an encrypted or oddly compressed member and a member failing its CRC-32 each raise
:class:`~elbits.errors.InputError` naming the file; no array data is read before its header passed.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional, Union

import numpy as np

from ..errors import InputError, MissingFileError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MAX_HEADER = 10000  # numpy's own limit; it writes a few hundred bytes at most
_CHUNK = 1 << 26  # bytes per read of a CRC pass
_LOCAL_HEADER = 30  # fixed part of a zip local file header

#: What :mod:`zipfile` raises on damaged or crafted archives (found by fuzzing: not only BadZipFile).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    OverflowError,
    IndexError,
    KeyError,
)

PathLike = Union[str, Path]


def one_line(e: BaseException) -> str:
    """The first line of an exception's message, for an error that must stay one line."""
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def describe_start(lead: bytes) -> str:
    """What a file whose first bytes are ``lead`` seems to be, for an error message."""
    if not lead:
        return "the file is empty"
    if lead.startswith(NPY_MAGIC):
        return "it is a single .npy array"
    if lead.startswith(ZIP_MAGIC):
        return "it is a zip archive cut short (no end-of-archive record)"
    if lead.startswith(PNG_MAGIC):
        return "it is a PNG image"
    if lead.startswith(b"elbits c"):
        return "it is an elbits training checkpoint"
    if lead[:1] == b"\x80":
        return "it is a Python pickle, which elbits never unpickles"
    return "its content is of no kind elbits reads"


def is_zip(path: Path) -> bool:
    """Whether ``path`` ends in a zip directory; :func:`zipfile.is_zipfile` itself raises on some damage."""
    try:
        return zipfile.is_zipfile(path)
    except ZIP_ERRORS:
        return False


@dataclass(frozen=True)
class NpyHeader:
    """An ``.npy`` header: ``shape``, ``dtype``, ``fortran`` order and ``offset`` (bytes before the data)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_header(f: IO[bytes], where: str) -> NpyHeader:
    """Parse the ``.npy`` header at the start of ``f`` (numpy's parser, on at most ``_MAX_HEADER`` bytes).

    Refuses object dtypes (they would need unpickling), negative dimensions and format versions other
    than 1.0 and 2.0 (3.0 exists only for non-latin-1 field names, which no numeric array has).
    """
    lead = f.read(8)
    if len(lead) < 8 or not lead.startswith(NPY_MAGIC):
        raise InputError(f"{where}: not a .npy array ({describe_start(lead)})")
    version = (lead[6], lead[7])
    if version not in ((1, 0), (2, 0)):
        raise InputError(f"{where}: .npy format version {version[0]}.{version[1]}; elbits reads 1.0 and 2.0")
    width = 2 if version == (1, 0) else 4
    raw_len = f.read(width)
    hlen = int.from_bytes(raw_len, "little")
    if len(raw_len) < width or hlen > _MAX_HEADER:
        raise InputError(
            f"{where}: malformed .npy header (length {hlen}; numpy writes at most {_MAX_HEADER})"
        )
    text = f.read(hlen)
    if len(text) < hlen:
        raise InputError(f"{where}: truncated inside its .npy header")
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        shape, fortran, dtype = reader(io.BytesIO(raw_len + text))
    except Exception as e:  # noqa: BLE001 - numpy's parser fails on bad bytes in many ways (TokenError too)
        raise InputError(f"{where}: malformed .npy header ({one_line(e)})") from None
    if dtype.hasobject:
        raise InputError(
            f"{where}: holds Python objects (dtype {dtype}), which only unpickling could read; "
            "elbits reads numeric arrays, with pickling off"
        )
    if len(shape) > 32 or any(s < 0 for s in shape):
        raise InputError(f"{where}: malformed .npy header (shape {shape})")
    return NpyHeader(tuple(int(s) for s in shape), dtype, bool(fortran), 8 + width + hlen)


def _check_size(head: NpyHeader, available: int, where: str) -> None:
    if head.nbytes != available:
        what = "truncated" if available < head.nbytes else "bytes after the array"
        raise InputError(
            f"{where}: its header declares {list(head.shape)} {head.dtype} ({head.nbytes} bytes) "
            f"but {max(available, 0)} bytes follow it ({what})"
        )


def _map(path: Path, head: NpyHeader, offset: int) -> np.ndarray:
    """A read-only memory map of the array at ``offset`` (sizes already checked)."""
    if head.nbytes == 0 or not head.shape:
        with path.open("rb") as f:
            f.seek(offset)
            return np.frombuffer(f.read(head.nbytes), dtype=head.dtype).reshape(head.shape)
    mm: np.ndarray = np.memmap(  # type: ignore[call-overload]
        str(path),
        dtype=head.dtype,
        mode="r",
        shape=head.shape,
        offset=offset,
        order="F" if head.fortran else "C",
    )
    return mm


def npy_header(path: PathLike) -> NpyHeader:
    """The checked header of a ``.npy`` file (its size matches the file), before any data is read."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no file at {path}")
    with path.open("rb") as f:
        head = read_header(f, str(path))
    _check_size(head, path.stat().st_size - head.offset, str(path))
    return head


def load_npy(path: PathLike, head: Optional[NpyHeader] = None) -> np.ndarray:
    """The array of a ``.npy`` file, memory-mapped read-only; pickled (object) arrays are refused.

    ``head``: its :func:`npy_header`, when the caller already checked it.
    """
    path = Path(path)
    head = head or npy_header(path)
    return _map(path, head, head.offset)


class NpzArchive:
    """The ``.npy`` members of an ``.npz`` (a zip as ``numpy.savez`` writes it), read with pickling off.

    Check :meth:`header` (shape, dtype) before :meth:`read`: a compressed member's size is what its header
    claims, so bounding it is the caller's job. Use as a context manager.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingFileError(f"no file at {self.path}")
        with self.path.open("rb") as f:
            lead = f.read(8)
        if not is_zip(self.path):
            raise InputError(
                f"{self.path}: not an .npz archive ({describe_start(lead)}); "
                "expected a zip of .npy arrays as numpy.savez writes"
            )
        try:
            self._zf = zipfile.ZipFile(self.path)
        except ZIP_ERRORS as e:
            raise InputError(f"{self.path}: corrupt .npz archive ({one_line(e)})") from None
        self._size = self.path.stat().st_size
        self.members = {i.filename[:-4]: i for i in self._zf.infolist() if i.filename.endswith(".npy")}

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zf.close()

    def __contains__(self, name: str) -> bool:
        return name in self.members

    def _where(self, name: str) -> str:
        return f"{self.path} (member {name}.npy)"

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = self.members[name]
        if info.flag_bits & 0x1:
            raise InputError(f"{self._where(name)}: encrypted; expected a plain numpy.savez archive")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise InputError(
                f"{self._where(name)}: zip compression method {info.compress_type}; "
                "expected stored or deflate, as numpy.savez writes"
            )
        return info

    def header(self, name: str) -> NpyHeader:
        """The checked ``.npy`` header of member ``name`` (without ``.npy``)."""
        info, where = self._info(name), self._where(name)
        try:
            with self._zf.open(info) as f:
                head = read_header(f, where)
        except InputError:
            raise
        except ZIP_ERRORS as e:
            raise InputError(f"{where}: corrupt ({one_line(e)})") from None
        _check_size(head, info.file_size - head.offset, where)
        return head

    def read(self, name: str, head: NpyHeader, mmap: bool = True) -> np.ndarray:
        """Member ``name``'s array, its CRC-32 verified: memory-mapped when stored uncompressed and ``mmap``,
        else read into memory."""
        info, where = self._info(name), self._where(name)
        if mmap and info.compress_type == zipfile.ZIP_STORED:
            start = self._data_start(info)
            self._verify_stored_crc(info, start, where)
            return _map(self.path, head, start + head.offset)
        try:
            with self._zf.open(info) as f:
                arr = np.lib.format.read_array(f, allow_pickle=False)
                f.read(1)  # reaching the end makes zipfile compare the CRC-32
        except ZIP_ERRORS as e:
            raise InputError(f"{where}: corrupt ({one_line(e)})") from None
        return arr

    def _data_start(self, info: zipfile.ZipInfo) -> int:
        with self.path.open("rb") as f:
            f.seek(info.header_offset)
            local = f.read(_LOCAL_HEADER)
        if len(local) < _LOCAL_HEADER or not local.startswith(ZIP_MAGIC):
            raise InputError(f"{self._where(info.filename[:-4])}: corrupt (bad zip local header)")
        start = (
            info.header_offset
            + _LOCAL_HEADER
            + int.from_bytes(local[26:28], "little")
            + int.from_bytes(local[28:30], "little")
        )
        if info.compress_size != info.file_size or start + info.file_size > self._size:
            raise InputError(
                f"{self._where(info.filename[:-4])}: corrupt (the member runs past the end of the file)"
            )
        return start

    def _verify_stored_crc(self, info: zipfile.ZipInfo, start: int, where: str) -> None:
        crc, left = 0, info.file_size
        with self.path.open("rb") as f:
            f.seek(start)
            while left > 0:
                block = f.read(min(_CHUNK, left))
                if not block:
                    break
                crc = zlib.crc32(block, crc)
                left -= len(block)
        if crc != info.CRC:
            raise InputError(f"{where}: fails its CRC-32 check (the archive is corrupt)")


def first_non_binary(arr: np.ndarray, rows: int = 1 << 14) -> Optional[object]:
    """The first value of ``arr`` that is neither 0 nor 1 (NaN included), scanned ``rows`` at a time along
    axis 0 so a memory map is paged through, not loaded; None when every value is 0 or 1."""
    if arr.dtype == np.bool_:
        return None
    for start in range(0, max(len(arr), 1), rows):
        block = np.asarray(arr[start : start + rows])
        if block.dtype.kind == "u":
            if block.size == 0 or block.max() <= 1:
                continue
            return block[block > 1].flat[0]
        ok = (block == 0) | (block == 1)
        if not ok.all():
            return block[~ok].flat[0]
    return None
