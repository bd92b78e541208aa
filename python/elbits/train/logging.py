"""Metric sinks: JSON lines (one record a log step, unit-bearing names) and optional TensorBoard scalars."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import InputError


def _clean(v: Any) -> Any:
    # JSON has no NaN/Inf: write them as null.
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class JsonlLogger:
    """Appends one JSON object per record to ``path``, each as one whole line, flushed.

    ``truncate_after`` (the checkpoint's step) drops the records of a run that went on past its last
    checkpoint, and a partial end-of-run record at that step (one off the ``log_every`` grid), so a resumed
    run's file reads like an uninterrupted one's; the kept records replace the file atomically. ``fresh``
    starts the file empty.
    """

    def __init__(
        self,
        path: Union[str, Path],
        truncate_after: Optional[int] = None,
        fresh: bool = False,
        log_every: int = 1,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            _replace(self.path, "")
        elif truncate_after is not None and self.path.exists():
            keep = [
                r
                for r in read_jsonl(self.path)
                if int(r["step"]) < truncate_after
                or (int(r["step"]) == truncate_after and int(r["step"]) % log_every == 0)
            ]
            _replace(self.path, "".join(json.dumps(r) + "\n" for r in keep))
        self._f = open(self.path, "a")  # noqa: SIM115 (closed in close())

    def log(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _replace(path: Path, text: str) -> None:
    # A reader (or a crash) sees the old file or the new one, never half of either.
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_jsonl(path: Union[str, Path]) -> list[dict[str, Any]]:
    """The records of a metrics file, in order.

    A last line without its newline that does not parse is the record a killed run was writing: it is
    left out. Any other line that is not a JSON object raises an :class:`InputError` naming the line.
    """
    path = Path(path)
    text = path.read_text()
    lines = text.split("\n")
    out = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if no == len(lines):  # cut short: the file did not end in a newline
                break
            raise InputError(f"{path}: line {no} is not JSON; expected one metrics record per line") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            raise InputError(
                f"{path}: line {no} is not a metrics record (a JSON object with an integer step)"
            )
        out.append(rec)
    return out


def tensorboard_available() -> bool:
    try:  # tensorboard is not a dependency of elbits: looked for only when a run asks to log to it
        import torch.utils.tensorboard  # noqa: F401
    except Exception:  # tensorboard not installed (ImportError) or broken
        return False
    return True


class TensorBoardLogger:
    """Scalars under ``log_dir`` when ``tensorboard`` is installed; a no-op otherwise (``enabled`` is
    False)."""

    def __init__(self, log_dir: Union[str, Path], enabled: bool = True) -> None:
        self.writer: Any = None
        if enabled and tensorboard_available():
            # not a dependency of elbits (tensorboard_available above): imported only for a run logging to it
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir))

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def log(self, record: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for k, v in record.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                group = "kl_per_dim" if k.startswith("kl_") and k.endswith("_bits") else "train"
                self.writer.add_scalar(f"{group}/{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
