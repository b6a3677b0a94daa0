"""`aesweep bench trials` and `aesweep bench memory`: real `python train.py` processes, timed and measured."""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from aesweep import record
from aesweep.bench.common import BenchError, base_overrides, checked_out, machine_description, rounded, write_table
from aesweep.processes import Run, RunsTimedOut, run_trains

def run_trials_at_once(overrides: Sequence[str], n_trials: int, concurrency: int, folder: Path,
                       threads: int | None, timeout: float) -> dict:
    """Start `n_trials` train.py runs, at most `concurrency` at a time; wall time, outcomes, peak memory."""
    extra = [f"trainer.threads={threads}"] if threads else []
    runs = [Run([*overrides, *extra, f"seed={number}", "trainer.save_weights=false"], folder / f"trial_{number}")
            for number in range(n_trials)]
    started = time.perf_counter()
    try:
        run_trains(runs, concurrency, timeout)
    except RunsTimedOut:
        raise BenchError(f"--timeout={timeout:g}: {n_trials} trials at concurrency {concurrency} took longer") from None
    wall = time.perf_counter() - started
    metrics = []
    for run in runs:
        try:
            metrics.append(record.read(run.run_dir))
        except record.RecordUnreadable:
            pass
    completed = [m for m in metrics if m["status"] == "completed"]
    return {"wall_s": wall, "completed": len(completed), "failed": n_trials - len(completed),
            "mean_val_mapped_acc": statistics.fmean(m["val"]["mapped_acc"] for m in completed) if completed
            else math.nan,
            "mean_trial_s": statistics.fmean(m["seconds"] for m in metrics) if metrics else math.nan,
            "peak_rss_mb_per_trial": max(run.peak_rss_mb for run in runs)}


def trials(args: argparse.Namespace) -> int:
    from aesweep.train import checked_config

    base = base_overrides(args) + [f"data.subset={args.subset}", f"trainer.epochs={args.epochs}"]
    _, device = checked_config(base)
    n_trials = args.trials or 2 * max(args.concurrency)
    out = checked_out(args.out, "trials.csv")
    rows = []
    with tempfile.TemporaryDirectory(prefix="aesweep-bench-trials-") as scratch:
        for concurrency in args.concurrency:
            # the cores are shared too (data, scoring, Python): each trial gets its share of them
            threads = max(1, (os.cpu_count() or 1) // concurrency)
            result = run_trials_at_once(base, n_trials, concurrency, Path(scratch) / f"c{concurrency}", threads,
                                        args.timeout)
            rows.append({"concurrency": concurrency, "trials": n_trials, "threads_per_trial": threads, **result,
                         "trials_per_hour": n_trials / result["wall_s"] * 3600})
            print(f"aesweep bench trials: {concurrency} at once: {rows[-1]['trials_per_hour']:.0f} trials/hour",
                  file=sys.stderr)
    table = pd.DataFrame(rows)
    table["vs_one_at_a_time"] = table["trials_per_hour"] / table["trials_per_hour"].iloc[0]
    notes = [f"{machine_description(device)}; device {device.type}",
             f"one trial = python train.py {' '.join(base)} seed=<trial number>",
             f"trials_per_hour = trials / wall seconds from the first start to the last finish x 3600; "
             f"vs_one_at_a_time is relative to concurrency {args.concurrency[0]}; each trial gets "
             "cores // concurrency torch threads; peak_rss_mb_per_trial is the largest single trial's ru_maxrss"]
    write_table(rounded(table), notes, out, "aesweep bench trials")
    return 0


def memory(args: argparse.Namespace) -> int:
    """Peak resident memory of one real `python train.py` run, against the limit."""
    from aesweep.train import checked_config

    base = base_overrides(args) + [f"trainer.epochs={args.epochs}"]
    if args.subset:
        base.append(f"data.subset={args.subset}")
    _, device = checked_config(base)
    out = checked_out(args.out, "memory.csv")
    with tempfile.TemporaryDirectory(prefix="aesweep-bench-memory-") as scratch:
        result = run_trials_at_once(base, 1, 1, Path(scratch), None, args.timeout)
    table = pd.DataFrame([{"device": device.type, "peak_rss_mb": result["peak_rss_mb_per_trial"],
                           "limit_mb": args.limit_mb, "within_limit": result["peak_rss_mb_per_trial"] <= args.limit_mb,
                           "completed": result["completed"] == 1, "seconds": result["wall_s"]}])
    notes = [f"{machine_description(device)}; device {device.type}",
             f"one run: python train.py {' '.join(base)} seed=0; peak_rss_mb = its ru_maxrss (including shared "
             "library pages, so an upper bound on what it alone needs)"]
    write_table(rounded(table), notes, out, "aesweep bench memory")
    return 0
