"""Runs handed to Hydra's launcher: one at a time, or several at once each in its own launch call.

Hydra's ``Launcher.launch(jobs)`` returns when the last of its jobs ends. Launching a batch therefore idles
every slot whose job ended early until the slowest one is done (the official Optuna sweeper's barrier). The
dispatcher instead launches each run on its own (a thread per run in flight, each calling the launcher with
one job), so a freed slot takes the next run at once. It goes through the launcher plugin either way: joblib
runs the job in its worker processes, submitit submits it to SLURM (or runs it locally), Ray as a task.
Hydra's basic launcher runs a job inside this process, so it gets one slot and no thread. With several slots the
sweep log says which run each slot starts and when it ends, by the run's folder under the sweep's, which is also
how train.py's own lines in a sweep name their run.
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn

from aesweep.errors import one_line

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the sweep loop wakes while it waits, so Ctrl-C and SIGTERM reach it


@dataclass
class RunJob:
    """One run of a trial: its seed (None: the config's own), the job's overrides and its folder."""

    trial_number: int
    seed: int | None
    overrides: list[str]
    run_dir: Path
    started: float = 0.0  # unix time the job began (its folder's first file), else its launch call did
    ended: float = 0.0  # ... and ended (its last write), else its launch call returned
    job_return: JobReturn | None = None
    launch_error: str | None = None
    pool_broke: bool = False  # the launcher's worker pool died under it (joblib: one killed worker fails them all)
    retried: bool = False
    slot: int | None = None  # 1..slots while it runs on its own; None in a batch (the launcher places its runs)

    @property
    def label(self) -> str:
        """The run's folder under its sweep's (``3/seed1``, ``confirm/3/seed10``): its ``hydra.sweep.subdir``."""
        subdirs = [o.partition("=")[2] for o in self.overrides if o.startswith("hydra.sweep.subdir=")]
        return subdirs[-1] if subdirs else self.run_dir.name


class Dispatcher:
    """Starts runs through the launcher and hands them back as they finish."""

    def __init__(self, launcher: Any, slots: int) -> None:
        self.launcher = launcher
        self.inline = type(launcher).__name__ == "BasicLauncher"  # the job runs in this very process
        self.slots = 1 if self.inline else slots
        self.running: dict[int, RunJob] = {}
        self._done: queue.Queue[RunJob] = queue.Queue()
        self._job_index = 0
        self._lock = threading.Lock()
        self._free_slots = list(range(1, self.slots + 1))

    @property
    def free(self) -> int:
        return self.slots - len(self.running)

    def start(self, run: RunJob) -> None:
        with self._lock:
            index = self._job_index
            self._job_index += 1
        self.running[id(run)] = run
        run.slot = self._free_slots.pop(0)  # the lowest free one, so that a sweep's log reads as steady slots
        if self.slots > 1:
            log.info("slot %d/%d: run %s started", run.slot, self.slots, run.label)
        if self.inline:
            self._launch([run], index)
        else:
            threading.Thread(target=self._launch, args=([run], index), name=f"aesweep-run-{index}", daemon=True).start()

    def start_batch(self, runs: Sequence[RunJob]) -> None:
        """All of them in one launch call (``dispatch: batch``): they come back when the slowest has ended."""
        index = self._job_index
        self._job_index += len(runs)
        for run in runs:
            self.running[id(run)] = run
        if len(runs) > 1:
            log.info("batch of %d runs started: %s", len(runs), ", ".join(run.label for run in runs))
        if self.inline:
            self._launch(list(runs), index)
        else:
            threading.Thread(target=self._launch, args=(list(runs), index), daemon=True).start()

    def next_finished(self) -> RunJob:
        """Block until a run ends (waking every POLL_S, so signals are handled) and return it."""
        while True:
            try:
                run = self._done.get(timeout=POLL_S)
            except queue.Empty:
                continue
            self.running.pop(id(run), None)
            if run.slot is not None:
                bisect.insort(self._free_slots, run.slot)
            if self.slots > 1:
                where = f"slot {run.slot}/{self.slots}: " if run.slot is not None else ""
                log.info("%srun %s ended after %.1f s", where, run.label, run.ended - run.started)
            run.slot = None
            return run

    def _launch(self, runs: list[RunJob], index: int) -> None:
        """Launch the runs in one call; a launcher failure (a job's process died) fails the runs of that call."""
        for run in runs:
            run.started = time.time()
        try:
            returns = list(self.launcher.launch([run.overrides for run in runs], initial_job_idx=index))
            error = None
        except KeyboardInterrupt:
            if self.inline:
                raise  # Ctrl-C or SIGTERM during a run in this process: the sweep loop ends the sweep
            returns, error = [], "launcher: interrupted"
        except Exception as failure:  # the thread must hand every run back, whatever happened
            returns, error = [], f"launcher: {one_line(failure)}"
            for run in runs:
                run.pool_broke = _worker_pool_broke(failure)
        for run, job_return in zip(runs, returns + [None] * (len(runs) - len(returns))):
            run.job_return, run.launch_error = job_return, error
            run.started, run.ended = _job_times(run.run_dir) or (run.started, time.time())
            self._done.put(run)


def _job_times(run_dir: Path) -> tuple[float, float] | None:
    """When the job itself began and ended, read from its folder: Hydra writes ``.hydra/config.yaml`` before it
    calls the task, and the job's last write (its log, metrics.json) ends it. A launch call of several jobs
    (``dispatch: batch``) returns when the slowest ends, so its own start and end would count the idle time of
    the slots that finished early as busy. None when the job wrote nothing (its process died first)."""
    try:
        began = (run_dir / ".hydra" / "config.yaml").stat().st_mtime
        ended = max(path.stat().st_mtime for path in run_dir.rglob("*") if path.is_file())
    except (OSError, ValueError):
        return None
    return began, ended


def _worker_pool_broke(failure: Exception) -> bool:
    """joblib's loky pool fails every job it runs when one of its workers dies (SIGKILL, out of memory): the
    runs of other launch calls in flight then fail without being at fault."""
    try:
        from joblib.externals.loky.process_executor import BrokenProcessPool, TerminatedWorkerError
    except ImportError:
        return False
    return isinstance(failure, (TerminatedWorkerError, BrokenProcessPool))
