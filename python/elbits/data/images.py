"""Colour image data from a folder, an image file, or a ``.npy`` / ``.npz`` array: uint8 ``[N, C, H, W]``.

A folder is searched recursively for ``.png``, ``.jpg`` and ``.jpeg`` files (case-insensitive; names starting
with ``.`` are skipped, other files are counted in the report and not read), read in sorted path order, so
CelebA's ``img_align_celeba/`` works as it is unpacked. Each image is converted to RGB (greyscale, palette,
RGBA, CMYK and 16-bit images are converted and counted per source mode in :class:`ImageReport`; alpha is
dropped, as torchvision's loader does; 16-bit levels keep their high byte, as Pillow does for 16-bit RGB) and
preprocessed by one of :data:`PREPROCESS`, with Pillow's bilinear filter:

- ``"celeba64"``: centre crop 148 x 148, then resize to ``size`` (64 by default): the CelebA recipe of
  DCGAN-style VAE code (``CenterCrop(148)``, ``Resize(64)`` on the PIL image);
- ``"celeba32"``: the same crop, resized to 32 by default;
- ``"resize"``: the whole image resized to ``size`` x ``size`` (aspect ratio not kept; 64 by default);
- ``"none"``: as stored; every image must then have one size (and be ``size`` x ``size`` when given).

Decoded images are kept in a uint8 cache file (an ``.npy`` memory map), so later loads and epochs never decode
again. Its name is a hash of the resolved folder, every file's relative path, size and modification time, the
preprocessing and the Pillow version: a changed, added or removed file makes a new cache. It is written to a
temporary name and renamed into place, so an interrupted decode leaves no cache. Where: ``cache_dir`` when
given; else ``$XDG_CACHE_HOME/elbits/images`` (``~/.cache/elbits/images``); ``cache_dir=False`` keeps the
images in memory and writes nothing. Old caches are not removed: delete the folder to reclaim the space.

Arrays: ``.npy`` files and ``.npz`` members are read with pickling off (:mod:`elbits.data.npyfile`). They must
be uint8: ``[N, H, W]`` (greyscale, C = 1), ``[N, C, H, W]`` or ``[N, H, W, C]`` with C in {1, 3}; the layout
is the one whose channel axis (axis 1 or the last) has size 1 or 3 while the other does not (both or neither:
refused as ambiguous). By default arrays are used as stored (``preprocess="none"``); a named preprocessing is
applied per image like for files (keeping C).

Every problem raises :class:`~elbits.errors.InputError` naming the file: a missing path, an empty folder, an
unreadable, truncated or non-image file, an image over Pillow's decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS``), one smaller than the crop, sizes that differ under ``"none"``, a symbolic
link loop, an array that is not uint8 or has a rank or channel count other than the above.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import PIL
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import InputError, MissingFileError
from .npyfile import NpyHeader, NpzArchive, npy_header, one_line

log = logging.getLogger(__name__)

PathLike = Union[str, Path]

#: Named preprocessing: name -> (centre crop side in px or None, default output side in px or None).
PREPROCESS: dict[str, tuple[Optional[int], Optional[int]]] = {
    "celeba64": (148, 64),
    "celeba32": (148, 32),
    "resize": (None, 64),
    "none": (None, None),
}
#: File name endings read from a folder (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: The one resampling filter: fixed, so a cache and its images never depend on a default.
RESAMPLE = Image.Resampling.BILINEAR
_FORMATS = ["PNG", "JPEG"]  # Pillow opens a camera's multi-picture JPEG (MPO) as JPEG too: its first frame
_CACHE_VERSION = 1
_CHUNK = 256  # images decoded per round of the thread pool: bounds what is held in memory
_MAX_SIDE = 4096


@dataclass(frozen=True)
class ImageReport:
    """What a load read: ``files`` images (rows), ``shape`` ``[N, C, H, W]``, ``modes`` (source Pillow
    mode -> count, ``"RGB"`` included; arrays: ``"array"``), ``skipped`` files in the folder that are not
    images (read none of them), ``cache`` (the cache file, or None) and ``from_cache`` (nothing decoded)."""

    source: str
    kind: str  # "folder", "image", "npy" or "npz"
    files: int
    shape: tuple[int, ...]
    preprocess: str
    modes: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    cache: Optional[str] = None
    from_cache: bool = False

    @property
    def converted(self) -> dict[str, int]:
        """The source modes that were converted to RGB, with their counts."""
        return {m: n for m, n in self.modes.items() if m not in ("RGB", "array")}

    def summary(self) -> str:
        """One line: how many images of which shape, what was converted, skipped and cached."""
        conv = ", ".join(f"{n} {m}" for m, n in sorted(self.converted.items()))
        parts = [f"{self.files} images {list(self.shape[1:])} uint8 from {self.source} ({self.preprocess})"]
        if conv:
            parts.append(f"converted to RGB: {conv}")
        if self.skipped:
            parts.append(f"{self.skipped} non-image files skipped")
        if self.cache:
            parts.append(("read from cache " if self.from_cache else "cached in ") + self.cache)
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["converted"] = self.converted
        return d


@dataclass(frozen=True)
class _Spec:
    name: str
    crop: Optional[int]
    size: Optional[int]


def _spec(preprocess: Optional[str], size: Optional[int], array: bool) -> _Spec:
    name = preprocess if preprocess is not None else ("none" if array else "celeba64")
    if name not in PREPROCESS:
        raise InputError(f"preprocess {name!r} is unknown; expected one of {', '.join(PREPROCESS)}")
    crop, default = PREPROCESS[name]
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= _MAX_SIDE:
            raise InputError(f"size {size!r}: expected an integer side in pixels, 1 to {_MAX_SIDE}")
        size = int(size)
    return _Spec(name, crop, size if size is not None else default)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/elbits/images``, or ``~/.cache/elbits/images`` when that is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "elbits" / "images"


def list_images(root: PathLike) -> tuple[list[Path], int]:
    """The image files under folder ``root`` (recursive, sorted by path) and how many other files it holds.

    Symbolic links are followed; a folder reached twice (a link loop, or a second link to it) is refused.
    """
    root = Path(root)
    files: list[Path] = []
    skipped = 0
    seen: dict[tuple[int, int], Path] = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            entries = list(os.scandir(folder))
        except OSError as e:
            raise InputError(f"{folder}: cannot list this folder ({e.strerror or one_line(e)})") from None
        key = (st.st_dev, st.st_ino)
        if key in seen:
            raise InputError(
                f"{folder}: a symbolic link to {seen[key]}, a folder already read (a link loop or a second "
                "path to the same images); expected each folder once"
            )
        seen[key] = folder
        for entry in entries:
            if entry.name.startswith("."):
                skipped += 1
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                stack.append(Path(entry.path))
            elif entry.name.lower().endswith(IMAGE_SUFFIXES):
                files.append(Path(entry.path))
            else:
                skipped += 1
    files.sort(key=lambda p: p.relative_to(root).parts)
    return files, skipped


def _to_rgb(im: Image.Image, where: str) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or (mode == "I" and im.format == "PNG"):  # 16-bit greyscale PNG
        levels = (np.asarray(im).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
        return Image.fromarray(levels).convert("RGB")
    if mode in ("I", "F"):
        raise InputError(f"{where}: mode {mode} (32-bit levels) has no 8-bit reading; expected 8 or 16 bits")
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise InputError(f"{where}: Pillow cannot convert mode {mode} to RGB ({one_line(e)})") from None


def _transform(im: Image.Image, spec: _Spec, where: str) -> Image.Image:
    w, h = im.size
    if spec.crop is not None:
        c = spec.crop
        if w < c or h < c:
            raise InputError(
                f"{where}: {w}x{h} px is smaller than the {c}x{c} centre crop of preprocess {spec.name!r}; "
                "use preprocess='resize' (or 'none') for small images"
            )
        left, top = int(round((w - c) / 2.0)), int(round((h - c) / 2.0))
        im = im.crop((left, top, left + c, top + c))
        w = h = c
    if spec.size is not None and (w, h) != (spec.size, spec.size):
        if spec.name == "none":
            raise InputError(
                f"{where}: {w}x{h} px, but size {spec.size} was asked with preprocess 'none'; "
                "use preprocess='resize' to resize"
            )
        im = im.resize((spec.size, spec.size), RESAMPLE)
    return im


def _decode_file(path: Path, spec: _Spec) -> tuple[np.ndarray, str]:
    """``[3, H, W]`` uint8 levels of one image file after ``spec``, and its source mode."""
    where = str(path)
    try:
        with Image.open(path, formats=_FORMATS) as im:
            mode = im.mode
            w, h = im.size
            bomb = Image.MAX_IMAGE_PIXELS  # None when the user turned Pillow's check off
            if bomb is not None and w * h > bomb:
                raise InputError(
                    f"{where}: {w}x{h} px is over Pillow's decompression-bomb limit of "
                    f"{bomb} px (PIL.Image.MAX_IMAGE_PIXELS); expected a photograph"
                )
            im.load()
            out = _transform(_to_rgb(im, where), spec, where)
            arr = np.asarray(out, dtype=np.uint8)
    except InputError:
        raise
    except Image.DecompressionBombError as e:
        raise InputError(f"{where}: refused by Pillow's decompression-bomb check ({one_line(e)})") from None
    except Image.UnidentifiedImageError:
        raise InputError(f"{where}: not a PNG or JPEG image (Pillow cannot identify it)") from None
    except Exception as e:  # noqa: BLE001 - decoders fail on damaged files in many ways (OSError, SyntaxError...)
        raise InputError(f"{where}: cannot be read as an image ({one_line(e)})") from None
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), mode


def _first_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path, formats=_FORMATS) as im:
            return im.size
    except Exception:  # noqa: BLE001 - the full decode names the problem
        _decode_file(path, _Spec("none", None, None))
        raise


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _fill(
    out: np.ndarray, decode: Callable[[int], tuple[np.ndarray, str]], names: list[Any]
) -> dict[str, int]:
    """Decode images 0..N-1 into ``out`` with a thread pool (Pillow decodes without the GIL); the first
    failure in file order is raised. Returns the count of each source mode."""
    modes: Counter[str] = Counter()
    expect = out.shape[1:]
    n = out.shape[0]
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        for start in range(0, n, _CHUNK):
            idx = range(start, min(start + _CHUNK, n))
            for i, (arr, mode) in zip(idx, pool.map(decode, idx)):
                if arr.shape != expect:
                    raise InputError(
                        f"{names[i]}: {arr.shape[2]}x{arr.shape[1]} px, but the first image is "
                        f"{expect[2]}x{expect[1]}; with preprocess 'none' every image must have one size "
                        "(use 'resize')"
                    )
                out[i] = arr
                modes[mode] += 1
    return dict(sorted(modes.items()))


def _cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _open_cache(path: Path, shape: tuple[int, ...]) -> Optional[tuple[np.ndarray, dict[str, Any]]]:
    """The cached images and their saved report, or None when the cache is absent or not as expected."""
    meta = path.with_suffix(".json")
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        head = npy_header(path)
        saved = json.loads(meta.read_text())
    except (InputError, OSError, ValueError):
        return None
    if head.shape != shape or head.dtype != np.uint8 or head.fortran or not isinstance(saved, dict):
        return None
    return _map_copy_on_write(path, head), saved


def _map_copy_on_write(path: Path, head: NpyHeader) -> np.ndarray:
    # Copy-on-write: tensors made from it are writable in this process and the file never changes.
    mm: np.ndarray = np.memmap(  # type: ignore[call-overload]
        str(path),
        dtype=head.dtype,
        mode="c",
        shape=head.shape,
        offset=head.offset,
        order="F" if head.fortran else "C",
    )
    return mm


def _write_atomic(
    path: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], dict[str, Any]]
) -> np.ndarray:
    """Create ``path`` (an ``.npy``) and its ``.json`` report by filling a temporary file and renaming it into
    place: a failure leaves neither."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        saved = fill(mm)
        mm.flush()
        del mm
        meta_tmp = tmp.with_suffix(".json.tmp")
        meta_tmp.write_text(json.dumps(saved, sort_keys=True))
        os.replace(meta_tmp, path.with_suffix(".json"))
        os.replace(tmp, path)
    except BaseException:
        for p in (tmp, tmp.with_suffix(".json.tmp")):
            p.unlink(missing_ok=True)
        raise
    return _map_copy_on_write(path, npy_header(path))


def _decode_into_cache(
    source: str,
    kind: str,
    names: list[Any],
    key_parts: dict[str, Any],
    shape: tuple[int, ...],
    decode: Callable[[int], tuple[np.ndarray, str]],
    cache_dir: Any,
    spec: _Spec,
    skipped: int,
) -> tuple[np.ndarray, ImageReport]:
    base = functools.partial(
        ImageReport,
        source=source,
        kind=kind,
        files=shape[0],
        shape=shape,
        preprocess=spec.name,
        skipped=skipped,
    )
    if cache_dir is False:
        out = np.empty(shape, np.uint8)
        report = base(modes=_fill(out, decode, names))
        _log(report, decoded=True)
        return out, report
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _cache_key({"v": _CACHE_VERSION, "pillow": PIL.__version__, **key_parts})
    path = folder / f"images-{key}.npy"
    hit = _open_cache(path, shape)
    if hit is not None:
        arr, saved = hit
        modes = saved.get("modes")
        report = base(modes=dict(modes) if isinstance(modes, dict) else {}, cache=str(path), from_cache=True)
        _log(report, decoded=False)
        return arr, report
    found: dict[str, int] = {}

    def fill(mm: np.ndarray) -> dict[str, Any]:
        found.update(_fill(mm, decode, names))
        return {"modes": found, "source": source}

    try:
        arr = _write_atomic(path, shape, fill)
    except OSError as e:
        raise InputError(
            f"cannot write the image cache in {folder} ({e.strerror or one_line(e)}); "
            "give a writable cache_dir, or cache_dir=False to keep the images in memory"
        ) from None
    report = base(modes=found, cache=str(path))
    _log(report, decoded=True)
    return arr, report


def _log(report: ImageReport, decoded: bool) -> None:
    if decoded and report.converted:
        log.warning("%s", report.summary())
    else:
        log.info("%s", report.summary())


def _check_limit(limit: Optional[int]) -> Optional[int]:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise InputError(f"limit {limit!r}: expected a positive number of images, or None for all")
    return int(limit)


def _load_folder(
    root: Path, spec: _Spec, cache_dir: Any, limit: Optional[int]
) -> tuple[np.ndarray, ImageReport]:
    files, skipped = list_images(root)
    if not files:
        raise InputError(
            f"{root}: no {'/'.join(s[1:].upper() for s in IMAGE_SUFFIXES)} files in this folder or below "
            f"({skipped} other files); expected images"
        )
    if limit is not None:
        files = files[:limit]
    stats = []
    for p in files:
        try:
            st = p.stat()
        except OSError as e:
            raise InputError(f"{p}: cannot be read ({e.strerror or one_line(e)})") from None
        stats.append([p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    if spec.crop is None and spec.size is None:
        w, h = _first_size(files[0])
    else:
        w = h = spec.size if spec.size is not None else spec.crop  # type: ignore[assignment]
    shape = (len(files), 3, h, w)

    def decode(i: int) -> tuple[np.ndarray, str]:
        return _decode_file(files[i], spec)

    key_parts = {"root": str(root.resolve()), "files": stats, "spec": [spec.name, spec.crop, spec.size]}
    return _decode_into_cache(str(root), "folder", files, key_parts, shape, decode, cache_dir, spec, skipped)


def _array_layout(shape: tuple[int, ...], where: str) -> str:
    if len(shape) == 3:
        return "NHW"
    if len(shape) == 4:
        first, last = shape[1] in (1, 3), shape[3] in (1, 3)
        if first and not last:
            return "NCHW"
        if last and not first:
            return "NHWC"
        why = "both axis 1 and the last axis have" if first else "neither axis 1 nor the last axis has"
        raise InputError(
            f"{where}: shape {list(shape)}: {why} size 1 or 3, so the channel axis is unknown; "
            "expected [N, C, H, W] or [N, H, W, C] with C in {1, 3}"
        )
    raise InputError(
        f"{where}: shape {list(shape)} (rank {len(shape)}); expected images [N, H, W], [N, C, H, W] or "
        "[N, H, W, C] with C in {1, 3}"
    )


def _check_array_header(head: NpyHeader, where: str) -> str:
    if head.dtype != np.uint8:
        raise InputError(
            f"{where}: dtype {head.dtype}; expected uint8 levels 0..255 (from [0, 1] floats: "
            "(x * 255).round().astype(np.uint8))"
        )
    layout = _array_layout(head.shape, where)
    if head.shape[0] == 0 or 0 in head.shape:
        raise InputError(f"{where}: holds no images (shape {list(head.shape)})")
    return layout


def _read_array(path: Path, member: Optional[str]) -> tuple[np.ndarray, str, str, str]:
    """(array as stored, layout, kind, where) of a ``.npy`` or an ``.npz`` member."""
    if path.suffix.lower() == ".npy":
        if member is not None:
            raise InputError(f"{path}: member {member!r} was given, but a .npy file holds one array")
        head = npy_header(path)
        layout = _check_array_header(head, str(path))
        return _map_copy_on_write(path, head), layout, "npy", str(path)
    with NpzArchive(path) as arc:
        names = sorted(arc.members)
        if not names:
            raise InputError(f"{path}: holds no .npy arrays; expected uint8 images")
        if member is not None:
            if member not in arc:
                raise InputError(f"{path}: no member {member!r}; it holds {names}")
            name = member
        elif len(names) == 1:
            name = names[0]
        else:
            heads = {}
            for m in names:
                try:
                    heads[m] = arc.header(m)
                except InputError:
                    continue
            fits = [m for m, h in heads.items() if h.dtype == np.uint8 and len(h.shape) in (3, 4)]
            if len(fits) != 1:
                raise InputError(
                    f"{path}: holds {len(names)} arrays {names}, {len(fits)} of them uint8 images; "
                    "name the one to read (member=...)"
                )
            name = fits[0]
        head = arc.header(name)
        where = f"{path} (member {name})"
        layout = _check_array_header(head, where)
        return arc.read(name, head), layout, "npz", where


def _load_array(
    path: Path, member: Optional[str], spec: _Spec, cache_dir: Any, limit: Optional[int]
) -> tuple[np.ndarray, ImageReport]:
    stored, layout, kind, where = _read_array(path, member)
    if limit is not None:
        stored = stored[:limit]
    arr = stored[:, None] if layout == "NHW" else stored.transpose(0, 3, 1, 2) if layout == "NHWC" else stored
    n, c, h, w = arr.shape
    if spec.crop is None and (spec.size is None or spec.size == h == w):
        report = ImageReport(where, kind, n, tuple(arr.shape), spec.name, {"array": n})
        log.info("%s", report.summary())
        return arr, report
    if spec.name == "none":
        raise InputError(
            f"{where}: images are {w}x{h} px, but size {spec.size} was asked with preprocess 'none'; "
            "use preprocess='resize' to resize"
        )
    side = int(spec.size if spec.size is not None else spec.crop)  # type: ignore[arg-type]
    shape = (n, c, side, side)

    def decode(i: int) -> tuple[np.ndarray, str]:
        img = arr[i]
        im = Image.fromarray(np.ascontiguousarray(img[0] if c == 1 else img.transpose(1, 2, 0)))
        out = np.asarray(_transform(im, spec, f"{where} image {i}"), dtype=np.uint8)
        return (out[None] if c == 1 else out.transpose(2, 0, 1)), "array"

    st = path.stat()
    key_parts = {
        "array": str(path.resolve()),
        "member": member,
        "size": st.st_size,
        "mtime": st.st_mtime_ns,
        "n": n,
        "spec": [spec.name, spec.crop, spec.size],
    }
    names = [f"{where} image {i}" for i in range(n)]
    return _decode_into_cache(where, kind, names, key_parts, shape, decode, cache_dir, spec, 0)


def _load(
    path: PathLike,
    size: Optional[int],
    preprocess: Optional[str],
    cache_dir: Any,
    limit: Optional[int],
    member: Optional[str],
) -> tuple[np.ndarray, ImageReport]:
    path = Path(path).expanduser()
    limit = _check_limit(limit)
    if not path.exists():
        raise MissingFileError(f"no file or folder at {path}")
    is_array = path.is_file() and path.suffix.lower() in (".npy", ".npz")
    spec = _spec(preprocess, size, is_array)
    if path.is_dir():
        return _load_folder(path, spec, cache_dir, limit)
    if is_array:
        return _load_array(path, member, spec, cache_dir, limit)
    if path.is_file():
        img, mode = _decode_file(path, spec)
        report = ImageReport(str(path), "image", 1, (1, *img.shape), spec.name, {mode: 1})
        return img[None], report
    raise InputError(f"{path}: neither a file nor a folder")


class ImageFolder(Dataset):
    """A folder of PNG/JPEG images (recursive), one image file, or a uint8 ``.npy`` / ``.npz`` array, as
    uint8 levels.

    ``ds[i]``: uint8 tensor ``[C, H, W]`` (C = 3 for image files); ``ds.images``: every image, a numpy
    uint8 array ``[N, C, H, W]`` (a memory map of the cache, or of the ``.npy``); ``ds.report``: the
    :class:`ImageReport`. ``size``: output side in px (None: 64, or 32 for ``"celeba32"``);
    ``preprocess``: one of :data:`PREPROCESS` (None: ``"celeba64"`` for image files, ``"none"`` for
    arrays); ``cache_dir``: where the decoded cache goes (None: ``~/.cache/elbits/images``, honouring
    ``$XDG_CACHE_HOME``; False: none, in memory); ``limit``: the first ``limit`` images in file order;
    ``member``: the ``.npz`` member to read (needed when it holds several uint8 image arrays).
    See :mod:`elbits.data.images` for the rules and errors.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        size: Optional[int] = None,
        preprocess: Optional[str] = None,
        cache_dir: Union[PathLike, None, bool] = None,
        limit: Optional[int] = None,
        member: Optional[str] = None,
    ) -> None:
        self.path = Path(path)
        self.images, self.report = _load(path, size, preprocess, cache_dir, limit, member)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.images[i]))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def __getstate__(self) -> dict[str, Any]:
        # A worker process re-maps the cache file instead of receiving a copy of every image.
        state = self.__dict__.copy()
        if self.report.cache is not None:
            state["images"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.images is None:
            path = Path(self.report.cache)  # type: ignore[arg-type]
            self.images = _map_copy_on_write(path, npy_header(path))


def load_images(
    path: PathLike,
    *,
    size: Optional[int] = None,
    preprocess: Optional[str] = None,
    cache_dir: Union[PathLike, None, bool] = None,
    limit: Optional[int] = None,
    member: Optional[str] = None,
) -> torch.Tensor:
    """Every image of ``path`` (a folder, one image file, a ``.npy`` or an ``.npz``) as a uint8 tensor
    ``[N, C, H, W]`` of levels 0..255, sharing memory with the cache's memory map where there is one.

    Arguments as for :class:`ImageFolder`, whose ``report`` says what was converted and where the cache is.
    """
    arr = ImageFolder(
        path, size=size, preprocess=preprocess, cache_dir=cache_dir, limit=limit, member=member
    ).images
    if not arr.flags.writeable:  # a memory-mapped stored .npz member: torch needs writable memory
        arr = np.array(arr)
    return torch.from_numpy(arr)
