"""`python train.py` runs as child processes, a few at a time: for the benches that time real runs.

Each run gets its own folder (`hydra.run.dir`), its output in `train.log` there, and comes back with its
exit status, wall seconds and peak resident memory (from the kernel's accounting when it exits).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aesweep.io import writing_to

REPO = Path(__file__).resolve().parents[2]  # src/aesweep/processes.py -> the checkout holding train.py


@dataclass
class Run:
    overrides: list[str]
    run_dir: Path
    returncode: int | None = None
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


class RunsTimedOut(Exception):
    """The runs took longer than allowed; the ones still running were killed."""


def run_trains(runs: list[Run], parallel: int, timeout: float, poll_s: float = 0.05) -> list[Run]:
    """Run `python train.py <overrides> hydra.run.dir=<run_dir>` for each run, `parallel` at a time, in order."""
    pending, running = list(runs), {}
    started = time.perf_counter()
    try:
        while pending or running:
            while pending and len(running) < parallel:
                run = pending.pop(0)
                with writing_to(run.run_dir):
                    run.run_dir.mkdir(parents=True, exist_ok=True)
                    log = (run.run_dir / "train.log").open("w")
                command = [sys.executable, str(REPO / "train.py"), *run.overrides, f"hydra.run.dir={run.run_dir}"]
                with log:
                    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
                running[process.pid] = (process, run, time.perf_counter())
            time.sleep(poll_s)
            for pid, (process, run, since) in list(running.items()):
                done, status, usage = os.wait4(pid, os.WNOHANG)  # the run's own peak memory comes with its exit
                if done:
                    process.returncode = run.returncode = os.waitstatus_to_exitcode(status)
                    run.seconds, run.peak_rss_mb = time.perf_counter() - since, usage.ru_maxrss / 2**10
                    del running[pid]
            if time.perf_counter() - started > timeout:
                raise RunsTimedOut(f"{len(runs)} runs, {parallel} at a time, took longer than {timeout:g} s")
    finally:
        for process, _, _ in running.values():
            process.kill()
            process.wait()
    return runs
