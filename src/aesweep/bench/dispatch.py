"""`aesweep bench dispatch`: the same real sweep with runs started as slots free (async) and in batches, side by
side in one sitting.

Each sweep is `python train.py -m sweep=<sweep>` with the given overrides, its own journal file and sweep folder,
the same sampler seed and trial count; the pairs alternate which mode goes first, so drift of the machine's
speed falls on both. From each study it reads when every trial's runs held a slot (the sweeper records it):

    wall_s            from the first run's start to the last run's end
    trials_per_hour   trials / wall_s x 3600
    utilisation       seconds runs held a slot / (slots x wall_s): 1.0 means no slot ever idled
    best_at_equal_wall the best value each mode had reached when the faster of the pair had finished
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from aesweep.bench.common import BenchError, checked_out, machine_description, rounded, write_table
from aesweep.processes import REPO
from aesweep.trial import BUSY_ATTR, ENDED_ATTR, STARTED_ATTR, slot_use

MODES = ("async", "batch")


def sweep_command(args: argparse.Namespace, mode: str, folder: Path) -> list[str]:
    return [sys.executable, str(REPO / "train.py"), "-m", f"sweep={args.sweep}", *args.override,
            f"hydra.sweeper.dispatch={mode}", f"hydra.sweeper.n_trials={args.trials}",
            f"hydra.sweeper.n_jobs={args.slots}", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.slots}",
            "hydra.sweeper.timeout=null", f"hydra.sweeper.sampler.seed={args.sampler_seed}",
            f"hydra.sweeper.storage={folder / 'journal.log'}", f"hydra.sweep.dir={folder / 'sweep'}",
            f"hydra.sweeper.study_name=bench-{mode}", "hydra.sweeper.baseline_study=null",
            "hydra.sweeper.confirm.seeds=null", "trainer.threads=1", "trainer.save_weights=false"]


def measure_sweep(args: argparse.Namespace, mode: str, folder: Path) -> dict:
    """Run one sweep; read from its study when each trial's runs held a slot and what each trial scored."""
    import optuna

    from aesweep.storage import open_storage

    command = sweep_command(args, mode, folder)
    started = time.perf_counter()
    with (folder / "sweep.log").open("w") as log:
        done = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout)
    if done.returncode != 0:
        raise BenchError(f"the {mode} sweep failed (exit {done.returncode}); see {folder / 'sweep.log'}")
    study = optuna.load_study(study_name=f"bench-{mode}", storage=open_storage(str(folder / "journal.log")))
    trials = [t for t in study.get_trials(deepcopy=False) if STARTED_ATTR in t.user_attrs]
    utilisation, wall = slot_use(trials, args.slots) or (math.nan, math.nan)
    first = min(t.user_attrs[STARTED_ATTR] for t in trials)
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    finished = sorted((t.user_attrs[ENDED_ATTR] - first, t.value) for t in trials if t.value is not None)
    return {"mode": mode, "wall_s": wall, "command_s": time.perf_counter() - started, "trials": len(trials),
            "complete": sum(t.state.name == "COMPLETE" for t in trials),
            "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "busy_s": sum(t.user_attrs[BUSY_ATTR] for t in trials), "utilisation": utilisation,
            "trials_per_hour": len(trials) / wall * 3600, "_finished": finished, "_sign": sign}


def best_by(finished: list[tuple[float, float]], seconds: float, sign: int) -> float | None:
    reached = [value for at, value in finished if at <= seconds + 1e-9]
    return (max(reached) if sign > 0 else min(reached)) if reached else None


def dispatch(args: argparse.Namespace) -> int:
    from aesweep.train import checked_config

    _, device = checked_config([f"sweep={args.sweep}", *args.override])
    out = checked_out(args.out, "dispatch.csv")
    rows = []
    with tempfile.TemporaryDirectory(prefix="aesweep-bench-dispatch-") as scratch:
        for pair in range(args.pairs):
            order = MODES if pair % 2 == 0 else MODES[::-1]
            measured = {}
            for mode in order:
                folder = Path(scratch) / f"pair{pair}-{mode}"
                folder.mkdir()
                measured[mode] = measure_sweep(args, mode, folder)
                print(f"aesweep bench dispatch: pair {pair + 1}, {mode}: {measured[mode]['trials_per_hour']:.0f} "
                      f"trials/hour, utilisation {measured[mode]['utilisation']:.1%}", file=sys.stderr)
            equal = min(m["wall_s"] for m in measured.values())
            for mode in MODES:
                row = measured[mode]
                row["best_at_equal_wall"] = best_by(row.pop("_finished"), equal, row.pop("_sign"))
                rows.append({"pair": pair + 1, "first": order[0], **row})
    table = pd.DataFrame(rows)
    ratios = [table[(table.pair == p) & (table["mode"] == "async")]["trials_per_hour"].iloc[0]
              / table[(table.pair == p) & (table["mode"] == "batch")]["trials_per_hour"].iloc[0]
              for p in sorted(table.pair.unique())]
    notes = [f"{machine_description(device)}; {args.slots} slots (joblib workers, 1 torch thread each)",
             f"sweep: python train.py -m sweep={args.sweep} {' '.join(args.override)}, {args.trials} trials, sampler "
             f"seed {args.sampler_seed}; the pairs alternate which mode runs first",
             f"async / batch trials per hour, median of {len(ratios)} pair(s): {statistics.median(ratios):.2f}x "
             f"({', '.join(f'{r:.2f}' for r in ratios)}); utilisation = seconds runs held a slot / (slots x wall)"]
    write_table(rounded(table), notes, out, "aesweep bench dispatch")
    return 0
