"""Atomic file writers: a reader sees either the old file or the complete new one, never a truncated one.

Each writer writes a temporary file in the target's directory (so the final rename stays on one
filesystem), flushes and fsyncs it, then ``os.replace``s it over the target. If anything fails the
temporary file is removed and the target is left untouched.

Commands that write where the user said (``--out``) check the place before they start
(``check_writable``) and turn a failed write into one line (``writing_to``), never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from aesweep.errors import ConfigError, OutputError


@contextlib.contextmanager
def _atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Yield a file object for a temporary sibling of ``path``; on clean exit, rename it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique name opened with "x", not mkstemp: mkstemp makes the file 0600 whatever the umask, and the
    # tables of a sweep on a shared file system must be readable by the others (0644 under umask 022).
    tmp_name = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with open(tmp_name, mode.replace("w", "x"), **kwargs) as handle:
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


def check_writable(path: str | os.PathLike, option: str = "--out", folder: bool = False) -> None:
    """Raise OutputError unless a file (with `folder`: a folder) could be written at `path`, creating the
    missing folders above it. Creates nothing: a command that runs for long checks its output first, so it
    cannot fail at the end, after the work."""
    target = Path(os.path.abspath(path))
    if target.is_dir() and not folder:
        raise OutputError(option, path, os.strerror(errno.EISDIR))
    in_the_way = folder_blocked_by(target if folder else target.parent)
    if in_the_way:
        existing, is_a_file = in_the_way
        raise OutputError(option, path, _blocked_by(errno.ENOTDIR if is_a_file else errno.EACCES, existing, target))


def check_creatable(folder: str, key: str) -> None:
    """Raise ConfigError unless `folder` exists as a writable folder or can be created."""
    target = Path(os.path.abspath(folder))
    in_the_way = folder_blocked_by(target)
    if in_the_way:
        existing, is_a_file = in_the_way
        problem = "is a file" if is_a_file else "is not writable"
        raise ConfigError(key, str(target), f"a folder that can be created, but {existing} {problem}")


def folder_blocked_by(folder: Path) -> tuple[Path, bool] | None:
    """What stops `folder` from being created or written: the nearest existing path on the way and
    whether it is a file (else: a folder without write permission); None when nothing does."""
    existing = folder
    while not existing.exists():  # False too when a parent is a file
        existing = existing.parent
    if not existing.is_dir():
        return existing, True
    return None if os.access(existing, os.W_OK | os.X_OK) else (existing, False)


@contextlib.contextmanager
def writing_to(path: str | os.PathLike, option: str = "--out") -> Iterator[None]:
    """Turn an OSError raised while writing `path` (a full disk, a file where a folder should be) into
    OutputError: `--out='x.csv': cannot write there (No space left on device)`."""
    try:
        yield
    except OSError as error:
        # mkdir(exist_ok=True) says "File exists" when a file stands where a folder is needed
        code = errno.ENOTDIR if isinstance(error, FileExistsError) else error.errno
        blocker = Path(os.path.abspath(error.filename)) if isinstance(error.filename, (str, os.PathLike)) else None
        if code is None:
            reason = " ".join(str(error).split()) or type(error).__name__
        else:
            reason = _blocked_by(code, blocker, Path(os.path.abspath(path)))
        raise OutputError(option, path, reason) from None


def _blocked_by(code: int, blocker: Path | None, target: Path) -> str:
    """`Not a directory: /etc/passwd`: the error and, when it is one of the target's folders, which one."""
    reason = os.strerror(code)
    return f"{reason}: {blocker}" if blocker is not None and blocker in target.parents else reason


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
