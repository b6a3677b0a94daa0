# Sourced by the scripts in this folder: where Python is, and the helpers that read a sweep's trials.csv.
# Every script runs from the repository root and writes its reference folder ($OUT) at the end.
PY=${PY:-.venv/bin/python}
AESWEEP=("$PY" -m aesweep)

# top_trials TRIALS_CSV K: the numbers of the K best COMPLETE trials (highest value first).
top_trials() {
  "$PY" - "$1" "$2" <<'PYTHON'
import sys
import pandas as pd
table = pd.read_csv(sys.argv[1])
done = table[(table["state"] == "COMPLETE") & table["value"].notna()]
print(" ".join(str(n) for n in done.sort_values(["value", "number"], ascending=[False, True])["number"].head(int(sys.argv[2]))))
PYTHON
}

# trial_params TRIALS_CSV NUMBER: that trial's searched parameters as overrides, one per line.
# The searched parameters are the columns named by an override key: everything but the metrics and bookkeeping.
trial_params() {
  "$PY" - "$1" "$2" <<'PYTHON'
import math, sys
import pandas as pd
table = pd.read_csv(sys.argv[1])
row = table[table["number"] == int(sys.argv[2])].iloc[0]
bookkeeping = {"number", "state", "value", "epochs", "epochs_planned", "seconds", "params", "status", "reason",
               "run_dir", "worker", "datetime_start", "study_name", "seed", "busy_seconds", "runs_started", "runs_ended"}
for column, value in row.items():
    if column in bookkeeping or column.startswith(("value", "val.", "test.", "fit.")):
        continue
    if isinstance(value, float) and math.isnan(value):
        continue  # a parameter this trial's group options do not have
    print(f"{column}={value}")
PYTHON
}

# choose_over_seeds RUNS_CSV OUT: the configuration (sweep folder) with the best mean val.mapped_acc;
# copies its runs' metrics.json to OUT/metrics_seed<s>.json and prints its folder.
choose_over_seeds() {
  "$PY" - "$1" "$2" <<'PYTHON'
import shutil, sys
from pathlib import Path
import pandas as pd
runs = pd.read_csv(sys.argv[1])
runs = runs[runs["state"] == "COMPLETE"]
best = runs.groupby("sweep_dir")["val.mapped_acc"].mean().idxmax()
for _, run in runs[runs["sweep_dir"] == best].iterrows():
    shutil.copy(Path(run["run_dir"]) / "metrics.json", Path(sys.argv[2]) / f"metrics_seed{int(run['seed'])}.json")
print(best)
PYTHON
}
