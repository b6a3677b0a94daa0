#!/usr/bin/env bash
# tracking-overhead-cpu: the wall time of `python train.py -m sweep=smoke` with logger=none, logger=mlflow and
# logger=tensorboard, ROUNDS rounds (default 3) taking the three in turn, so that a slower minute of the machine
# falls on all three alike; the median wall time of each and its ratio to logger=none, and the same for the CPU
# time of the sweep and its jobs (steadier than wall time where other work shares the machine).
# MLflow makes its database's tables once per store (alembic migrations): a first, separately reported sweep
# does it, and the timed ones track into that store, as every sweep after a user's first does.
#   bash scripts/tracking-overhead-cpu.sh        (from the repository root; about 6 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/tracking-overhead-cpu}; HERE=outputs/sweeps/tracking-overhead; ROUNDS=${ROUNDS:-3}
rm -rf "$HERE"; mkdir -p "$OUT" "$HERE"
echo "round,logger,seconds,cpu_seconds" > "$HERE/times.csv"
echo "logger,cpu_seconds,writer_cpu_seconds,seconds" > "$HERE/trackers.csv"

sweep() {  # round, logger: one smoke sweep in a study of its own; its wall time and CPU time go into times.csv
  local round=$1 logger=$2 extra=()
  [ "$logger" = mlflow ] && extra=(logger.tracking_uri="sqlite:///$HERE/mlflow.db" logger.artifact_location="$HERE/mlartifacts")
  "$PY" - "$round" "$logger" "$HERE" "$PY" train.py -m sweep=smoke logger="$logger" "${extra[@]}" \
    hydra.sweeper.study_name="smoke-$logger-$round" hydra.sweeper.storage="$HERE/journal.log" \
    hydra.sweep.dir="$HERE/$logger-$round" <<'PYTHON'
import resource, subprocess, sys, time
round_, logger, here, command = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
start = time.perf_counter()
with open(f"{here}/{logger}-{round_}.log", "w") as log:
    subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the sweep process and every job it ran
with open(f"{here}/times.csv", "a") as times:
    times.write(f"{round_},{logger},{wall:.2f},{usage.ru_utime + usage.ru_stime:.2f}\n")
PYTHON
}

sweep new-store mlflow
for round in $(seq 1 "$ROUNDS"); do
  for logger in none mlflow tensorboard; do sweep "$round" "$logger"; done
done

# The trackers' own cost, without the sweeps' noise: in a process that has loaded what a job loads, the CPU and
# wall time of 4 trials' trackers (start, the 2 epochs' rows, finish) fed with the records of the none-1 sweep.
for logger in none mlflow tensorboard; do
  "$PY" - "$logger" "$HERE" <<'PYTHON'
import json, resource, sys, time
from pathlib import Path
import pandas as pd
import aesweep.train  # noqa: F401  (torch, pandas, scikit-learn, hydra: what a job has loaded before its tracker)
from aesweep import tracking
from aesweep.config import CONF_DIR
from hydra import compose, initialize_config_dir
logger, here = sys.argv[1], Path(sys.argv[2])
extra = [f"logger.tracking_uri=sqlite:///{here}/mlflow.db", f"logger.artifact_location={here}/mlartifacts"] \
    if logger == "mlflow" else []
with initialize_config_dir(config_dir=str(CONF_DIR.resolve()), version_base="1.3"):
    configs = [compose("config", overrides=[f"logger={logger}", *extra, "++trial.study_name=tracker-cost",
                                            f"++trial.storage={here}/journal.log", f"++trial.trial_number={n}"])
               for n in range(4)]
cpu, wall = time.process_time(), time.perf_counter()
for n, cfg in enumerate(configs):
    source = here / "none-1" / str(n)
    out = here / f"tracker-{logger}" / str(n)
    out.mkdir(parents=True, exist_ok=True)
    tracker = tracking.start(cfg, out)
    for row in pd.read_csv(source / "history.csv").to_dict("records"):
        tracker.log_epoch(row)
    tracker.finish(json.loads((source / "metrics.json").read_text()), sorted(source.glob("*.png")))
cpu_run = time.process_time() - cpu
tracking.stop_writer()  # the MLflow writer's work: waited for here, its CPU in RUSAGE_CHILDREN
writer_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(here / "trackers.csv", "a") as table:
    table.write(f"{logger},{cpu_run:.3f},{writer_cpu.ru_utime + writer_cpu.ru_stime:.3f},"
                f"{time.perf_counter() - wall:.3f}\n")
PYTHON
done

"$PY" - "$HERE/times.csv" "$OUT" <<'PYTHON'
import os, platform, subprocess, sys
import pandas as pd
times, out = pd.read_csv(sys.argv[1]), sys.argv[2]
timed = times[times["round"] != "new-store"]
wall, cpu = (timed.groupby("logger")[column].median() for column in ("seconds", "cpu_seconds"))
rows = [f"| {logger} | {', '.join(f'{s:.1f}' for s in timed[timed.logger == logger].seconds)} | {wall[logger]:.1f} | "
        f"{wall[logger] / wall['none']:.3f} | {cpu[logger]:.1f} | {cpu[logger] / cpu['none']:.3f} |"
        for logger in ("none", "mlflow", "tensorboard")]
first = times[times["round"] == "new-store"].seconds.iloc[0]
model = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True)
              .stdout.splitlines() if line.startswith("Model name")), platform.processor())
text = "\n".join(["| logger | wall seconds (rounds in turn) | median | ratio to none | median CPU seconds | ratio |",
                  "|---|---|---|---|---|---|", *rows, "",
                  f"mlflow into a new store (its tables made first): {first:.1f} s wall.",
                  f"CPU: {model}, {os.cpu_count()} cores; {len(times)} sweeps."])
trackers = pd.read_csv(sys.argv[1].replace("times.csv", "trackers.csv"))
text += "\n\n" + "\n".join(["4 trials' trackers alone (in one process, as the basic launcher runs a sweep's jobs):", "",
                             "| logger | CPU seconds in the run's process | in the MLflow writer | wall seconds "
                             "(writer waited for) | run-process CPU share of none's median sweep |",
                             "|---|---|---|---|---|",
                             *[f"| {t.logger} | {t.cpu_seconds:.2f} | {t.writer_cpu_seconds:.2f} | {t.seconds:.2f} | "
                               f"{t.cpu_seconds / cpu['none']:.1%} |" for t in trackers.itertuples()]])
open(f"{out}/times.md", "w").write(text + "\n")
times.to_csv(f"{out}/times.csv", index=False)
trackers.to_csv(f"{out}/trackers.csv", index=False)
print(text)
PYTHON
