"""Atomic file writers: a reader sees either the old file or the complete new one, never a truncated one.

Each writer writes a temporary file in the target's directory (so the final rename stays on one
filesystem), flushes and fsyncs it, then ``os.replace``s it over the target. If anything fails the
temporary file is removed and the target is left untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd


@contextlib.contextmanager
def _atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Yield a file object for a temporary sibling of ``path``; on clean exit, rename it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with _atomic_open(path) as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically. NaN/inf are written as null (valid JSON)."""
    text = json.dumps(_finite_or_none(obj), indent=2, allow_nan=False) + "\n"
    write_text_atomic(path, text)


def write_csv_atomic(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write ``df`` to ``path`` as CSV (no index column) atomically."""
    with _atomic_open(path) as handle:
        df.to_csv(handle, index=False)


def write_bytes_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(handle)`` on a binary temporary file and rename it onto ``path`` (for images, checkpoints)."""
    with _atomic_open(path, "wb") as handle:
        write(handle)


def _finite_or_none(obj: Any) -> Any:
    """Replace float NaN/inf (not representable in strict JSON) by None and numpy values by Python ones, recursively."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {key: _finite_or_none(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(value) for value in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return _finite_or_none(obj.tolist())
    return obj
