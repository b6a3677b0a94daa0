#!/usr/bin/env bash
# recipe-ablations-cpu: the recipe sweep=default searches around (its fixed values: 5 heads, IIC plus the
# entropy, balance and consistency terms) at make sweep's budget (8,000 images, 6 epochs), and the same with one
# ingredient taken out; seeds 10-12, one torch thread per run, two runs at a time.
#   bash scripts/recipe-ablations-cpu.sh     (from the repository root; about 25 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/recipe-ablations-cpu}; HERE=outputs/sweeps/recipe-ablations; mkdir -p "$OUT"
RECIPE=(model=conv optimizer=adam loss=iic data.subset=8000 trainer.epochs=6 trainer.threads=1 model.heads=5
        loss.recon_weight=0.3 loss.entropy_weight=1.0 loss.balance_weight=4.0 loss.consistency_weight=1.5
        augment.rotation=25.0)
ablate() {  # name, then the overrides that take an ingredient out (none: the recipe itself)
  local name=$1; shift
  "$PY" train.py -m sweep=seeds "${RECIPE[@]}" "$@" 'hydra.sweeper.seeds=[10,11,12]' \
    hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2 \
    hydra.sweeper.study_name="recipe-$name" hydra.sweeper.storage="$HERE/journal.log" hydra.sweep.dir="$HERE/$name"
}
ablate recipe
ablate one-head model.heads=1
ablate iic-only loss.entropy_weight=0 loss.balance_weight=0 loss.consistency_weight=0
ablate no-iic loss.iic_weight=0
ablate no-entropy loss.entropy_weight=0
ablate no-balance loss.balance_weight=0
ablate no-consistency loss.consistency_weight=0
"${AESWEEP[@]}" collect "$HERE" --out "$OUT/runs.csv"
"${AESWEEP[@]}" compare "$HERE" --format md > "$OUT/compare.md"
