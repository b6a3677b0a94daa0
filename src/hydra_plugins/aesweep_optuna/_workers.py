"""Who owns a running trial, whether that owner is still alive, and one claim at a time.

Several sweep commands (workers) may share one study: on one machine, or on many machines against
PostgreSQL. Each trial records the worker that claimed it (host, pid, the pid namespace and the
process start time) and gets a heartbeat from that worker every ``heartbeat_interval`` seconds.
A RUNNING trial is stale when
  - its worker ran in this machine's pid namespace and that process is gone (or its pid now
    belongs to a younger process): decided at once, no waiting; or
  - its worker is elsewhere and its last heartbeat is older than ``stale_after`` seconds.
Trials that carry no worker record (created by other tools) are never touched.

Optuna's own heartbeat exists only for RDBStorage and is driven by ``Study.optimize``; the sweeper
uses ask/tell and a journal file by default, so it records its own heartbeat as a trial system
attribute, which every storage supports.

Claims (count the trials, create one if fewer than n_trials) must not interleave between workers,
or two workers could both create the last trial. ``claim_lock`` serialises them: an flock on a
file beside a journal/SQLite file (released by the kernel if the holder is killed), a PostgreSQL
advisory lock for postgresql:// storages.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from aesweep.storage import local_file, rdb_url, waiting_out_outages

log = logging.getLogger(__name__)

WORKER_ATTR = "aesweep:worker"  # trial system attribute: the Worker that claimed the trial
HEARTBEAT_ATTR = "aesweep:heartbeat"  # trial system attribute: unix time of the last heartbeat


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a Linux process, None if there is none."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may contain spaces and ')'
    return fields[0], fields[19]


def _pid_space() -> str:
    """Names the set of processes whose pids this process can check: host, boot and pid namespace."""
    host = socket.gethostname()
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return host
    return f"{host}/{_read('/proc/sys/kernel/random/boot_id')}/{namespace}"


@dataclass(frozen=True)
class Worker:
    """The sweep process that claimed a trial."""

    host: str
    pid: int
    pid_space: str
    started: str  # process start time (Linux clock ticks since boot); "" where unknown

    @classmethod
    def this_process(cls) -> Worker:
        stat = _proc_stat(os.getpid())
        return cls(socket.gethostname(), os.getpid(), _pid_space(), stat[1] if stat else "")

    @classmethod
    def from_attr(cls, attr: object) -> Worker | None:
        if not isinstance(attr, dict):
            return None
        try:
            return cls(str(attr["host"]), int(attr["pid"]), str(attr["pid_space"]), str(attr["started"]))
        except (KeyError, TypeError, ValueError):
            return None

    def as_attr(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"

    def is_alive_here(self) -> bool:
        """Whether this worker's process still runs; only meaningful in the same pid space."""
        stat = _proc_stat(self.pid)
        if stat is not None:
            state, started = stat
            return state not in ("Z", "X") and (not self.started or started == self.started)
        if Path("/proc/self/stat").exists():
            return False
        try:  # no /proc (macOS): existence is all we can check
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def stale_reason(trial: FrozenTrial, me: Worker, now: float, stale_after: float) -> str | None:
    """Why a RUNNING trial is abandoned, or None while its worker may still be on it."""
    if trial.state != TrialState.RUNNING:
        return None
    owner = Worker.from_attr(trial.system_attrs.get(WORKER_ATTR))
    if owner is None or owner == me:
        return None
    if owner.pid_space == me.pid_space:
        if owner.is_alive_here():
            return None
        return f"its sweep process {owner} ended while the trial ran (killed?)"
    start = trial.datetime_start.timestamp() if trial.datetime_start else now
    last_beat = float(trial.system_attrs.get(HEARTBEAT_ATTR, start))
    if now - last_beat > stale_after:
        return f"no heartbeat from its sweep process {owner} for {now - last_beat:.0f} s"
    return None


def fail_stale_trials(storage: BaseStorage, trials: list[FrozenTrial], me: Worker, stale_after: float) -> list[int]:
    """Mark abandoned RUNNING trials FAIL, with the reason as user attr ``reason``; their numbers.

    Like Optuna's own ``fail_stale_trials``, this writes the state straight to the storage: the
    sampler's after-trial hook belongs to the worker that ran the trial, not to this one.
    """
    from optuna.exceptions import UpdateFinishedTrialError

    failed = []
    now = time.time()
    for trial in trials:
        reason = stale_reason(trial, me, now, stale_after)
        if reason is None:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "reason", reason)
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:  # another worker closed it first
            continue
        log.warning("trial %d marked FAIL: %s", trial.number, reason)
        failed.append(trial.number)
    return failed


class Heartbeat:
    """A daemon thread stamping the time on each running trial of this worker."""

    def __init__(self, storage: BaseStorage, interval: float) -> None:
        self._storage = storage
        self._interval = interval
        self._trial_ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="aesweep-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def add(self, trial_id: int) -> None:
        with self._lock:
            self._trial_ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self._trial_ids.discard(trial_id)

    def beat(self, trial_id: int) -> None:
        try:
            self._storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except Exception as error:  # a closed trial or a storage hiccup must not kill the thread
            log.debug("heartbeat for trial id %d failed: %s", trial_id, error)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                trial_ids = list(self._trial_ids)
            for trial_id in trial_ids:
                self.beat(trial_id)


@contextlib.contextmanager
def claim_lock(storage: str, study_name: str) -> Iterator[None]:
    """Serialise claims on one study across processes (and machines, for PostgreSQL)."""
    path = local_file(storage)
    if path is not None:
        with _flock(path.with_name(path.name + ".claim-lock")):
            yield
    elif storage.startswith(("postgresql:", "postgresql+")):
        with _pg_advisory_lock(storage, study_name):
            yield
    else:
        log.warning("no claim lock for %s: concurrent workers may overshoot n_trials", storage.split(":", 1)[0])
        yield


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: one worker per study is safe; several may overshoot n_trials
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _pg_advisory_lock(storage: str, study_name: str) -> Iterator[None]:
    """A session advisory lock: PostgreSQL releases it if the holder's connection dies."""
    import sqlalchemy

    key = int.from_bytes(hashlib.sha1(f"aesweep:{study_name}".encode()).digest()[:8], "big", signed=True)
    engine = sqlalchemy.create_engine(rdb_url(storage)[0], poolclass=sqlalchemy.pool.NullPool)

    @waiting_out_outages
    def locked() -> Any:  # a restarting server: wait for it, as every storage operation does
        connection = engine.connect()
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        except BaseException:
            connection.close()
            raise
        return connection

    connection = locked()
    try:
        yield
    finally:
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        except sqlalchemy.exc.DBAPIError:
            pass  # the connection died with the server, and the session's lock with it
        connection.close()
        engine.dispose()
