#!/usr/bin/env bash
# full-data-cpu: the recipe sweep=default searches around, on all 55,000 training images for 10 epochs, over
# seeds 20-24 (used by no search or confirmation); one torch thread per run, two runs at a time.
#   bash scripts/full-data-cpu.sh        (from the repository root; about 45 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/full-data-cpu}; HERE=outputs/sweeps/full-data; mkdir -p "$OUT"
RECIPE=(model=conv optimizer=adam loss=iic model.heads=5 loss.recon_weight=0.301 loss.entropy_weight=1.085
        loss.balance_weight=3.923 loss.consistency_weight=1.615 augment.rotation=27.74 optimizer.lr=0.001
        trainer.batch_size=128)
"$PY" train.py -m sweep=seeds "${RECIPE[@]}" data.subset=null trainer.epochs=10 trainer.threads=1 \
  'hydra.sweeper.seeds=[20,21,22,23,24]' hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2 \
  hydra.sweeper.study_name=full-data hydra.sweeper.storage="$HERE/journal.log" hydra.sweep.dir="$HERE/sweep"
"${AESWEEP[@]}" collect "$HERE/sweep" --out "$OUT/runs.csv"
"$PY" - "$OUT" <<'PYTHON'
import shutil, sys
from pathlib import Path
import pandas as pd
out = Path(sys.argv[1])
for _, run in pd.read_csv(out / "runs.csv").iterrows():
    shutil.copy(Path(run["run_dir"]) / "metrics.json", out / f"metrics_seed{int(run['seed'])}.json")
PYTHON
