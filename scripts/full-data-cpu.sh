#!/usr/bin/env bash
# full-data-cpu: the recipe sweep=default searches around, on all 55,000 training images, over 5 seeds that no
# search or confirmation used; one torch thread per run, two runs at a time. EPOCHS and SEEDS choose the budget
# and the seeds, CHANGE adds overrides to the recipe and NAME names the folder (default epochs-<EPOCHS>).
#   bash scripts/full-data-cpu.sh                                (15 epochs, seeds 40-44: about 70 minutes)
#   EPOCHS=10 SEEDS=20,21,22,23,24 bash scripts/full-data-cpu.sh (the 10-epoch folder: about 45 minutes)
#   EPOCHS=10 SEEDS=20,21,22,23,24 CHANGE=model.heads=10 NAME=epochs-10-heads-10 bash scripts/full-data-cpu.sh
# Each seed's metrics.json and history.csv are copied into the folder.
set -euo pipefail
source "$(dirname "$0")/common.sh"
EPOCHS=${EPOCHS:-15}; SEEDS=${SEEDS:-40,41,42,43,44}; NAME=${NAME:-epochs-$EPOCHS}; read -ra CHANGE <<< "${CHANGE:-}"
OUT=${OUT:-outputs/reference/full-data-cpu/$NAME}; HERE=outputs/sweeps/full-data-$NAME
mkdir -p "$OUT"
RECIPE=(model=conv optimizer=adam loss=iic model.heads=5 loss.recon_weight=0.301 loss.entropy_weight=1.085
        loss.balance_weight=3.923 loss.consistency_weight=1.615 augment.rotation=27.74 optimizer.lr=0.001
        trainer.batch_size=128)
"$PY" train.py -m sweep=seeds "${RECIPE[@]}" ${CHANGE[@]+"${CHANGE[@]}"} data.subset=null trainer.epochs="$EPOCHS" trainer.threads=1 \
  "hydra.sweeper.seeds=[$SEEDS]" hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2 \
  hydra.sweeper.study_name="full-data-$NAME" hydra.sweeper.storage="$HERE/journal.log" \
  hydra.sweep.dir="$HERE/sweep"
"${AESWEEP[@]}" collect "$HERE/sweep" --out "$OUT/runs.csv"
"$PY" - "$OUT" <<'PYTHON'
import shutil, sys
from pathlib import Path
import pandas as pd
out = Path(sys.argv[1])
for _, run in pd.read_csv(out / "runs.csv").iterrows():
    shutil.copy(Path(run["run_dir"]) / "metrics.json", out / f"metrics_seed{int(run['seed'])}.json")
    shutil.copy(Path(run["run_dir"]) / "history.csv", out / f"history_seed{int(run['seed'])}.csv")
PYTHON
