"""`aesweep reseed`: re-run a sweep's best trials over several seeds and choose among them on validation.

    aesweep reseed outputs/sweeps/full/h100 --top 3 --seeds 0,1,2 --jobs 9

A sweep ranks configurations by one run each, so its best trial is partly its best seed. This command
takes the `--top` COMPLETE trials by the study's objective, runs each of them once per seed (the
trial's own overrides from its `.hydra/overrides.yaml`, with `seed=<s>`; `--jobs` runs at once), and
chooses the configuration with the best *mean* validation metric. Test metrics are reported, never
used to choose. Written to `<sweep>/reseed/` (or `--out`): one run folder per configuration and
seed, `runs.csv` (one row per run), `summary.csv`/`.md` (mean and sd per configuration, the chosen
one first) and `chosen.yaml` (its overrides, to run alone: `python train.py $(sed -n 's/^- //p' chosen.yaml)`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from aesweep import record
from aesweep.arguments import OneLineParser, hydra_override, one_line_errors, positive_int
from aesweep.errors import AesweepError
from aesweep.io import check_writable, write_csv_atomic, write_text_atomic, writing_to
from aesweep.processes import Run, RunsTimedOut, run_trains

REPORTED = record.METRICS


class ReseedError(AesweepError):
    """A sweep folder or argument this command cannot use (shown as one line)."""


def study_direction(sweep_dir: Path) -> str:
    study = sweep_dir / "study.yaml"
    if not study.is_file():
        return "maximize"
    directions = (yaml.safe_load(study.read_text()) or {}).get("directions") or ["maximize"]
    return str(directions[0])


def top_trials(sweep_dir: Path, top: int) -> pd.DataFrame:
    """The `top` COMPLETE trials by the study's (first) objective, best first."""
    path = sweep_dir / "trials.csv"
    if not path.is_file():
        raise ReseedError(f"{sweep_dir}: no trials.csv there; give the folder of a sweep (outputs/sweeps/<name>/<time>)")
    table = pd.read_csv(path)
    value = "value" if "value" in table else next((c for c in table if c.startswith("values_")), None)
    if value is None or "run_dir" not in table:
        raise ReseedError(f"{path}: not an aesweep trials table (no value or run_dir column)")
    complete = table[(table["state"] == "COMPLETE") & table[value].notna()]
    if complete.empty:
        raise ReseedError(f"{path}: no COMPLETE trial to re-run")
    ascending = study_direction(sweep_dir) == "minimize"
    return complete.sort_values([value, "number"], ascending=[ascending, True]).head(top).reset_index(drop=True)


def trial_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides that made a trial's run, without the sweeper's bookkeeping and its seed."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        raise ReseedError(f"{path} is missing: the trial's run folder is needed to re-run it")
    keep = []
    for override in yaml.safe_load(path.read_text()) or []:
        key = override.split("=", 1)[0].lstrip("+~")
        if not (key.startswith("trial.") or key == "seed"):
            keep.append(override)
    return keep


def cores_share(overrides: list[str], jobs: int) -> list[str]:
    """`trainer.threads` for a run sharing the cores with jobs - 1 others, unless the trial set its own:
    a CPU run's numbers depend on its thread count, so re-running it with another would not reproduce it."""
    if any(override.split("=", 1)[0].lstrip("+") == "trainer.threads" for override in overrides):
        return []
    return [f"trainer.threads={max(1, (os.cpu_count() or 1) // jobs)}"]


def check_runs(configs: list[list[str]], extra: list[str]) -> None:
    """Compose and validate each configuration's first run as `python train.py` would, before any run starts:
    a bad --override is one line now, not a failed run per configuration and seed."""
    from aesweep.train import checked_config

    for overrides in configs:
        checked_config([*overrides, *extra])


def run_all(jobs: list[tuple[list[str], Path]], parallel: int, timeout: float) -> None:
    """`python train.py <overrides> hydra.run.dir=<dir>` for each job, `parallel` at a time."""
    try:
        run_trains([Run(list(overrides), run_dir) for overrides, run_dir in jobs], parallel, timeout, poll_s=0.2)
    except RunsTimedOut:
        raise ReseedError(f"--timeout={timeout:g}: the runs took longer; finished runs are in their folders") from None


def run_row(candidate: int, trial: int, seed: int, run_dir: Path) -> dict:
    row = {"candidate": candidate, "trial": trial, "seed": seed, "run_dir": str(run_dir)}
    try:
        metrics = record.read(run_dir)
    except record.RecordUnreadable:
        return {**row, "status": "failed", "reason": f"no {record.RECORD_FILE} (see {run_dir / 'train.log'})"}
    row.update(status=metrics["status"], reason=metrics["reason"], seconds=metrics["seconds"])
    for split in ("val", "test"):
        for name in REPORTED:
            row[f"{split}.{name}"] = (metrics[split] or {}).get(name, math.nan)  # null for a diverged run
    return row


def summarise(runs: pd.DataFrame, metric: str, ascending: bool) -> pd.DataFrame:
    """Mean and sd over seeds per configuration, ordered by the mean of `metric` (validation only)."""
    columns = [metric, *(f"test.{name}" for name in REPORTED[:3])]
    grouped = runs.groupby(["candidate", "trial"])
    summary = grouped.agg(seeds=("seed", "count"),
                          completed=("status", lambda s: int((s == "completed").sum())))
    for column in columns:
        summary[f"{column} mean"] = grouped[column].mean()
        summary[f"{column} sd"] = grouped[column].std(ddof=1)
    summary = summary.reset_index().sort_values(f"{metric} mean", ascending=ascending, na_position="last")
    summary.insert(0, "chosen", [True] + [False] * (len(summary) - 1))
    return summary.reset_index(drop=True)


def reseed(args: argparse.Namespace) -> int:
    sweep_dir = Path(args.sweep_dir)
    out = Path(args.out) if args.out else sweep_dir / "reseed"
    if not args.metric.startswith("val."):
        raise ReseedError(f"--metric={args.metric}: a val.* metric (the choice is made on validation only)")
    candidates = top_trials(sweep_dir, args.top)
    configs = [trial_overrides(Path(run_dir)) for run_dir in candidates["run_dir"]]
    configs = [[*overrides, *cores_share(overrides, args.jobs)] for overrides in configs]
    check_runs(configs, [*args.override, f"seed={args.seeds[0]}"])
    check_writable(out, folder=True)
    jobs, keys = [], []
    for candidate, (trial, overrides) in enumerate(zip(candidates["number"], configs)):
        for seed in args.seeds:
            run_dir = (out / f"trial{trial}_seed{seed}").resolve()
            jobs.append(([*overrides, *args.override, f"seed={seed}"], run_dir))
            keys.append((candidate, int(trial), seed, run_dir))
    print(f"aesweep reseed: {len(configs)} configuration(s) x {len(args.seeds)} seed(s) = {len(jobs)} runs, "
          f"{args.jobs} at a time, into {out}", file=sys.stderr)
    run_all(jobs, args.jobs, args.timeout)

    runs = pd.DataFrame([run_row(*key) for key in keys])
    if args.metric not in runs:
        raise ReseedError(f"no run completed (see the train.log files under {out})")
    summary = summarise(runs, args.metric, ascending=False)
    chosen_trial = int(summary.loc[0, "trial"])
    chosen = configs[list(candidates["number"]).index(chosen_trial)] + list(args.override)
    from aesweep.results.table import format_table

    notes = [f"sweep: {sweep_dir}; top {len(configs)} COMPLETE trials by its objective, each run with seeds "
             f"{', '.join(map(str, args.seeds))}; chosen = best mean {args.metric} (validation only); test is "
             "reported, never used to choose"]
    markdown = format_table(summary, "md", notes)
    with writing_to(out):
        write_csv_atomic(out / "runs.csv", runs)
        write_csv_atomic(out / "summary.csv", summary)
        write_text_atomic(out / "summary.md", markdown)
        write_text_atomic(out / "chosen.yaml",
                          f"# Chosen by aesweep reseed: trial {chosen_trial} of {sweep_dir}, best mean {args.metric} "
                          f"over seeds {args.seeds}\n" + yaml.safe_dump(chosen, default_flow_style=False))
    sys.stdout.write(markdown)
    return 0


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed list: {text!r} (expected e.g. 0,1,2)") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"invalid seed list: {text!r} (a seed appears twice)")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="aesweep reseed", description=__doc__.split("\n\n")[1],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a sweep's folder (holding trials.csv)")
    parser.add_argument("--top", type=positive_int, default=3, help="how many of the best trials (default 3)")
    parser.add_argument("--seeds", type=_seed_list, default=[0, 1, 2], help="seeds, comma-separated (default 0,1,2)")
    parser.add_argument("--jobs", type=positive_int, default=1, help="runs at once (default 1); each gets "
                                                                     "cores // jobs torch threads")
    parser.add_argument("--metric", default="val.mapped_acc", help="validation metric that chooses "
                                                                    "(default val.mapped_acc; higher is better)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", type=hydra_override,
                        help="extra override for every run, repeatable (e.g. --override device=cuda)")
    parser.add_argument("--out", help="output folder (default SWEEP_DIR/reseed)")
    parser.add_argument("--timeout", type=float, default=24 * 3600, help="seconds for all runs (default 1 day)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    return one_line_errors(parser.prog, lambda: reseed(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
