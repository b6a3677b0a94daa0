#!/usr/bin/env bash
# recipe-ingredients-cpu: one ingredient at a time added to the recipe sweep=default searches around, over seeds 30-35
# (which no search or confirmation uses), at the 8,000-image budget where the recipe merges digits on half the seeds
# and at make sweep's 20,000 images x 6 epochs. One torch thread per run, two runs at a time.
#   bash scripts/recipe-ingredients-cpu.sh                       (from the repository root; about 45 minutes)
#   VARIANTS="cosine" IMAGES=20000 bash scripts/recipe-ingredients-cpu.sh   (only these, then the table of all run so far)
#   VARIANTS="recipe ema-0.99" IMAGES=20000 HERE=outputs/sweeps/ingredients-ema \
#     OUT=outputs/reference/recipe-ingredients-cpu/ema bash scripts/recipe-ingredients-cpu.sh   (a table of its own)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/recipe-ingredients-cpu}; HERE=${HERE:-outputs/sweeps/ingredients}; mkdir -p "$OUT"
RECIPE=(model=conv optimizer=adam loss=iic trainer.epochs=6 trainer.threads=1 model.heads=5
        loss.recon_weight=0.3 loss.entropy_weight=1.0 loss.balance_weight=4.0 loss.consistency_weight=1.5
        augment.rotation=25.0 trainer.save_weights=false)
declare -A CHANGE=(  # variant -> the overrides it adds to the recipe
  [recipe]=""
  [overcluster-50]="model.overcluster=50"
  [cosine]="scheduler=cosine"
  [views-2]="loss.views=2"
  [erase-0.3]="augment.erase=0.3"
  [erase-0.45]="augment.erase=0.45"
  [erase-band]="augment.erase=0.3 augment.erase_aspect=7"
  [balance-8]="loss.balance_weight=8.0"
  [balance-16]="loss.balance_weight=16.0"
  [lambda-3]="loss.iic_lambda=3.0"
  [n-init-3]="trainer.n_init=3"
  [ema-0.99]="trainer.ema_decay=0.99"
)
read -ra VARIANTS <<< "${VARIANTS:-recipe overcluster-50 cosine views-2 erase-0.3 erase-0.45 erase-band balance-8 balance-16 lambda-3 n-init-3}"
read -ra IMAGES <<< "${IMAGES:-8000 20000}"
for images in "${IMAGES[@]}"; do
  for name in "${VARIANTS[@]}"; do
    read -ra change <<< "${CHANGE[$name]}"
    "$PY" train.py -m sweep=seeds "${RECIPE[@]}" data.subset=$images ${change[@]+"${change[@]}"} \
      'hydra.sweeper.seeds=[30,31,32,33,34,35]' hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2 \
      hydra.sweeper.study_name="images-$images-$name" hydra.sweeper.storage="$HERE/journal.log" \
      hydra.sweep.dir="$HERE/images-$images-$name"
  done
done
"${AESWEEP[@]}" collect "$HERE" --out "$OUT/runs.csv"
"$PY" - "$OUT/runs.csv" <<'PYTHON' > "$OUT/table.md"
import sys
import pandas as pd
runs = pd.read_csv(sys.argv[1])
print("| images | variant | test mapped_acc, seeds 30-35 (%) | mean +- sd | worst | test recon_mse | seconds per run |")
print("|---|---|---|---:|---:|---:|---:|")
folder = runs["sweep_dir"].str.rsplit("/", n=1).str[-1]  # images-<n>-<variant>
runs["images"] = folder.str.extract(r"images-(\d+)-")[0].astype(int)
runs["variant"] = folder.str.replace(r"images-\d+-", "", regex=True)
for (images, variant), group in runs.groupby(["images", "variant"], sort=True):
    group = group.sort_values("seed")
    acc = group["test.mapped_acc"] * 100
    print(f"| {images:,} | {variant} | {', '.join(f'{a:.1f}' for a in acc)} | {acc.mean():.1f} +- {acc.std(ddof=1):.1f} "
          f"| {acc.min():.1f} | {group['test.recon_mse'].mean():.4f} | {group['seconds'].median():.0f} |")
PYTHON
cat "$OUT/table.md"
