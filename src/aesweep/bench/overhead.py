"""`aesweep bench overhead`: what the sweeper itself costs per trial, from a sweep of trials that do nothing.

A sweep of `--trials` trials of a task that returns at once (aesweep.bench.noop), on a journal file, in one
process (Hydra's basic launcher): each trial's wall time is then claiming, sampling (TPE, over every trial so
far), launching through Hydra, recording and the tables. Reported per block of trials, so its growth with the
study's size shows, and as a fraction of a reference trial time (`--trial-seconds`, e.g. a make-sweep trial).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from aesweep.bench.common import BenchError, checked_out, machine_description, rounded, write_table

BLOCK = 100


def overhead(args: argparse.Namespace) -> int:
    import optuna
    import torch

    from aesweep.storage import open_storage

    out = checked_out(args.out, "overhead.csv")
    with tempfile.TemporaryDirectory(prefix="aesweep-bench-overhead-") as scratch:
        journal = Path(scratch) / "journal.log"
        command = [sys.executable, "-m", "aesweep.bench.noop", "-m", f"hydra.sweeper.n_trials={args.trials}",
                   f"hydra.sweeper.storage={journal}", f"hydra.sweep.dir={Path(scratch) / 'sweep'}",
                   "hydra.sweeper.study_name=overhead"]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=args.timeout)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise BenchError(f"the sweep failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        trials = sorted(optuna.load_study(study_name="overhead", storage=open_storage(str(journal))).trials,
                        key=lambda t: t.number)
    ends = [t.datetime_complete.timestamp() for t in trials]
    rows = []
    for first in range(0, len(trials), BLOCK):
        block = trials[first:first + BLOCK]
        span = ends[first + len(block) - 1] - (ends[first - 1] if first else block[0].datetime_start.timestamp())
        per_trial = span / len(block)
        rows.append({"trials": f"{first}-{first + len(block) - 1}", "s_per_trial": per_trial,
                     "of_reference_trial": per_trial / args.trial_seconds})
    table = pd.DataFrame(rows)
    notes = [f"{machine_description(torch.device('cpu'))}; one process (Hydra's basic launcher), a journal file",
             f"{len(trials)} trials of a task that returns at once (python -m aesweep.bench.noop -m), TPE seeded; "
             f"{wall:.0f} s for the whole command, {wall / len(trials) * 1000:.0f} ms a trial",
             f"of_reference_trial = s_per_trial / {args.trial_seconds:g} s (--trial-seconds, a trial the sweep "
             "would run for real)"]
    write_table(rounded(table), notes, out, "aesweep bench overhead")
    return 0
