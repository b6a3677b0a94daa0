#!/usr/bin/env bash
# recipe-budget-cpu: the recipe sweep=default searches around (5 heads, IIC plus the entropy, balance and consistency
# terms, its default weights) over seeds 30-35, which no search, confirmation or ablation uses, at 8,000 images and
# 6 epochs with one change at a time: more heads, smaller batches (more steps), more epochs, or more images; then
# the same 120,000 images seen spread over more images and fewer epochs. One torch thread per run, two at a time.
#   bash scripts/recipe-budget-cpu.sh    (from the repository root; about 60 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/recipe-budget-cpu}; HERE=outputs/sweeps/recipe-budget; mkdir -p "$OUT"
RECIPE=(model=conv optimizer=adam loss=iic data.subset=8000 trainer.epochs=6 trainer.threads=1 model.heads=5
        loss.recon_weight=0.3 loss.entropy_weight=1.0 loss.balance_weight=4.0 loss.consistency_weight=1.5
        augment.rotation=25.0 trainer.save_weights=false)
variant() {  # name, then the overrides that change the recipe (none: the recipe itself)
  local name=$1; shift
  "$PY" train.py -m sweep=seeds "${RECIPE[@]}" "$@" 'hydra.sweeper.seeds=[30,31,32,33,34,35]' \
    hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2 \
    hydra.sweeper.study_name="budget-$name" hydra.sweeper.storage="$HERE/journal.log" hydra.sweep.dir="$HERE/$name"
}
variant recipe
variant heads-10 model.heads=10
variant batch-64 trainer.batch_size=64
variant batch-32 trainer.batch_size=32
variant epochs-12 trainer.epochs=12
variant images-20k-epochs-4 data.subset=20000 trainer.epochs=4
variant images-20k data.subset=20000
variant images-30k-epochs-4 data.subset=30000 trainer.epochs=4
variant images-40k-epochs-3 data.subset=40000 trainer.epochs=3
variant images-55k-epochs-2 data.subset=null trainer.epochs=2
"${AESWEEP[@]}" collect "$HERE" --out "$OUT/runs.csv"
"$PY" - "$OUT/runs.csv" <<'PYTHON' > "$OUT/table.md"
import sys
import pandas as pd
runs = pd.read_csv(sys.argv[1])
print("| variant | test mapped_acc, seeds 30-35 (%) | mean +- sd | worst | test recon_mse | seconds per run |")
print("|---|---|---:|---:|---:|---:|")
for study, group in runs.groupby("study_name", sort=False):
    group = group.sort_values("seed")
    acc = group["test.mapped_acc"] * 100
    print(f"| {study.removeprefix('budget-')} | {', '.join(f'{a:.1f}' for a in acc)} | {acc.mean():.1f} +- "
          f"{acc.std(ddof=1):.1f} | {acc.min():.1f} | {group['test.recon_mse'].mean():.4f} | {group['seconds'].median():.0f} |")
PYTHON
cat "$OUT/table.md"
