"""Optuna study storages, opened in one place: by the sweeper, by each trial's job, and by the tools that read
a finished sweep.

A storage is named by one string: a journal file path (the default, `outputs/optuna/journal.log`: appends
under a file lock, safe for many processes on one machine or NFS, no server), `sqlite:///path.db`, or
`postgresql://user:password@host:port/database` (several machines). A sweep folder's `study.yaml` says
which study in which storage it ran, so `aesweep plot` and the dashboard find it again.

Optuna is imported lazily: a single run (no sweep) never pays for it.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from aesweep.errors import AesweepError, ConfigError, one_line

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

DEFAULT_STORAGE = "outputs/optuna/journal.log"  # relative to the folder the sweep command starts in
STUDY_FILE = "study.yaml"  # in each sweep folder: study_name, storage, directions, objectives, search space

STORAGE_FORMS = (
    "a journal file path (e.g. outputs/optuna/journal.log), sqlite:///path.db "
    "or postgresql://user:password@host:port/database"
)
# SQLite admits one writer at a time; a writer waits this long for the lock instead of failing
# with "database is locked" when several trial processes report at once.
SQLITE_BUSY_TIMEOUT_S = 60
# Tries at opening an RDB storage: workers opening a fresh database at once race to create Optuna's
# tables; the loser fails once and then finds them.
RDB_OPEN_ATTEMPTS = 3


class StorageUnavailable(AesweepError):
    """A finished sweep's study cannot be opened (no study.yaml, a missing file, an unreachable database)."""


def is_journal_file(storage: str) -> bool:
    """A storage string without a URL scheme names an Optuna journal file."""
    return "://" not in storage


def local_file(storage: str) -> Path | None:
    """The file a journal or SQLite storage lives in (None for a server or an in-memory database)."""
    if is_journal_file(storage):
        return Path(storage).expanduser()
    if storage.startswith("sqlite:///") and storage != "sqlite:///:memory:":
        return Path(storage[len("sqlite:///"):])
    return None


def resolved(storage: str | None, launch_dir: Path) -> str:
    """The storage string with a relative file path made absolute against the folder the command started in,
    so every job (whatever its working folder) opens the same file. None means DEFAULT_STORAGE."""
    storage = storage or DEFAULT_STORAGE
    if is_journal_file(storage):
        return str((launch_dir / Path(storage).expanduser()).resolve())
    if storage.startswith("sqlite:///") and not storage.startswith("sqlite:////") and storage != "sqlite:///:memory:":
        return "sqlite:///" + str((launch_dir / storage[len("sqlite:///"):]).resolve())
    return storage


def open_storage(storage: str, wait_s: float = 0.0) -> optuna.storages.BaseStorage:
    """Open (creating it if need be) the storage a string names; a ConfigError keyed `storage` if it cannot be.

    A database is tried RDB_OPEN_ATTEMPTS times a second apart, then, for up to ``wait_s`` seconds, as long as it
    keeps refusing: a job that opens its trial's study while the server restarts waits it out, as every later
    call does, while the sweep's own first open (0) says at once that an address is wrong."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if is_journal_file(storage):
        path = Path(storage).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            drop_torn_record(path)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as error:
            where = f" ({error.filename})" if error.filename else ""  # "File exists (x)": x is a file, not a folder
            raise ConfigError("storage", storage, f"{STORAGE_FORMS}; cannot open it: {error.strerror}{where}") from None

    url, engine_kwargs = rdb_url(storage)
    deadline, pause = time.monotonic() + wait_s, 1.0
    for attempt in itertools.count(1):
        try:
            return reconnecting_rdb_storage()(url, engine_kwargs={"pool_pre_ping": True, **engine_kwargs})
        except ImportError:
            raise ConfigError(
                "storage", storage, "its database driver is not installed (PostgreSQL: pip install 'aesweep[postgres]')"
            ) from None
        except Exception as error:  # SQLAlchemy raises many kinds; the user needs one line.
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if attempt < RDB_OPEN_ATTEMPTS:
                time.sleep(1.0)
                continue
            if time.monotonic() + pause > deadline:
                raise ConfigError("storage", storage, f"{STORAGE_FORMS}; cannot open it: {first_line}") from None
            log.warning("storage: cannot open the database (%s); trying again in %.0f s", first_line[:120], pause)
            time.sleep(pause)
            pause = min(2 * pause, 5.0)
    raise AssertionError("unreachable")


def drop_torn_record(path: Path) -> bytes:
    """Cut a journal file's last record when a crash or a full disk left it without its end (no newline).

    Optuna's reader refuses such a file ("Should not reach."), and its next append would be glued to the torn
    line, losing every later record. The cut happens under the journal's own lock; it says in one line what
    was dropped. Returns the dropped bytes (empty when the file was whole)."""
    from optuna.storages.journal import JournalFileSymlinkLock

    if not path.is_file() or path.stat().st_size == 0:
        return b""
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with path.open("rb+") as journal:
            size = journal.seek(0, os.SEEK_END)
            journal.seek(max(0, size - 1))
            if journal.read(1) == b"\n":
                return b""
            tail_start = max(0, size - (1 << 20))
            journal.seek(tail_start)
            tail = journal.read()
            keep = tail_start + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
            journal.seek(keep)
            dropped = journal.read()
            journal.truncate(keep)
            journal.flush()
            os.fsync(journal.fileno())
    finally:
        lock.release()
    log.warning("storage %s: its last record was cut short (a crash or a full disk while it was written): dropped "
                "%d bytes (%s...); the studies go on without it", path, len(dropped),
                dropped[:60].decode("utf-8", "replace"))
    return dropped


# How long an operation on a database storage keeps trying while the server is away (a restart, a fail-over).
RDB_OUTAGE_S = 120


def reconnecting_rdb_storage() -> type:
    """RDBStorage whose every operation waits out a database that went away and came back.

    A restarted PostgreSQL drops every connection: without this, the sweep and each running job would die at
    their next call. SQLAlchemy's pre-ping replaces dead pooled connections; an operation that still fails to
    reach the server (its transaction was rolled back, nothing was written) is tried again, with a growing
    pause, for up to RDB_OUTAGE_S seconds.
    """
    global _RECONNECTING
    if _RECONNECTING is None:
        from optuna.storages import BaseStorage, RDBStorage

        names = [name for name, value in vars(BaseStorage).items()
                 if callable(value) and not name.startswith("_") and hasattr(RDBStorage, name)]
        # Optuna puts a cache in front of an RDB storage (optuna.storages._CachedStorage), and the cache calls
        # these private methods of it, not their public twins: asking a trial and suggesting a parameter go here.
        names += [name for name in ("_create_new_trial", "_set_trial_param", "_get_trials", "_get_best_trial_id",
                                    "_get_stale_trial_ids") if hasattr(RDBStorage, name)]
        _RECONNECTING = type("ReconnectingRDBStorage", (RDBStorage,),
                             {name: waiting_out_outages(getattr(RDBStorage, name)) for name in names})
    return _RECONNECTING


_RECONNECTING: type | None = None


def waiting_out_outages(operation: Any) -> Any:
    """`operation`, tried again while the database is unreachable (see reconnecting_rdb_storage)."""
    import functools

    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

    def unreachable(error: BaseException) -> DBAPIError | None:
        """The database error behind `error` when it says the server was out of reach, else None.

        Optuna wraps it in a StorageInternalError; and when the connection dies while SQLAlchemy loads a
        query's related rows, what surfaces is a PendingRollbackError raised in the handling of the lost
        connection. Both are followed back to the OperationalError (or invalidated connection) behind them.
        """
        seen: set[int] = set()
        while error is not None and id(error) not in seen:
            seen.add(id(error))
            if isinstance(error, OperationalError) or getattr(error, "connection_invalidated", False):
                return error
            error = error.__cause__ or error.__context__
        return None

    @functools.wraps(operation)
    def patient(*args: Any, **kwargs: Any) -> Any:
        deadline, pause = time.monotonic() + RDB_OUTAGE_S, 0.5
        while True:
            try:
                return operation(*args, **kwargs)
            except (SQLAlchemyError, StorageInternalError) as error:
                cause = unreachable(error)
                if cause is None or time.monotonic() > deadline:
                    raise
                log.warning("storage: the database is unreachable (%s); trying again in %.1f s",
                            one_line(cause.orig or cause)[:120], pause)
                time.sleep(pause)
                pause = min(2 * pause, 5.0)

    return patient


def rdb_url(storage: str) -> tuple[str, dict[str, Any]]:
    """The SQLAlchemy URL and engine options for an RDB storage string."""
    if storage.startswith("sqlite:"):
        return storage, {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    if storage.startswith("postgresql://"):
        # SQLAlchemy's plain postgresql:// means psycopg2; the project's extra installs psycopg 3.
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            try:
                import psycopg  # noqa: F401

                return "postgresql+psycopg://" + storage[len("postgresql://"):], {}
            except ImportError:
                pass
    return storage, {}


def write_study_file(sweep_dir: Path, info: dict[str, Any]) -> None:
    """`study.yaml` in a sweep folder: which study in which storage the sweep ran, and how it was defined."""
    from aesweep.io import write_text_atomic

    write_text_atomic(sweep_dir / STUDY_FILE, yaml.safe_dump(info, sort_keys=False))


def read_study_file(sweep_dir: Path) -> dict[str, Any]:
    """A sweep folder's `study.yaml`; empty when absent or unreadable."""
    try:
        info = yaml.safe_load((sweep_dir / STUDY_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return info if isinstance(info, dict) else {}


def open_sweep_study(sweep_dir: Path) -> optuna.Study:
    """The study a sweep folder's study.yaml names, opened without creating or changing any storage."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    info = read_study_file(sweep_dir)
    if not info:
        raise StorageUnavailable(f"no readable {STUDY_FILE} in {sweep_dir}")
    storage, name = info.get("storage"), info.get("study_name")
    if not storage:
        raise StorageUnavailable(f"{STUDY_FILE} names no storage (the study lived in memory)")
    storage = str(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if storage.startswith("sqlite:///"):
            path = _existing_file(storage[len("sqlite:///"):], sweep_dir)
            backend = RDBStorage(f"sqlite:///{path}", skip_table_creation=True)
        elif "://" in storage:
            url, engine_kwargs = rdb_url(storage)
            backend = RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=True)
        else:
            backend = JournalStorage(JournalFileBackend(str(_existing_file(storage, sweep_dir))))
        return optuna.load_study(study_name=name, storage=backend)
    except StorageUnavailable:
        raise
    except Exception as error:
        raise StorageUnavailable(f"cannot open study {name!r} in {storage}: {one_line(error)}") from None


def _existing_file(path_text: str, sweep_dir: Path) -> Path:
    """A storage file as written (relative to the current folder) or relative to the sweep folder."""
    for candidate in (Path(path_text).expanduser(), sweep_dir / path_text):
        if candidate.is_file():
            return candidate
    raise StorageUnavailable(f"storage file {path_text} not found")
