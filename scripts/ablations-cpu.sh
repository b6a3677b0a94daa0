#!/usr/bin/env bash
# ablations-cpu: the headline configuration (outputs/reference/headline-h100/overrides.txt) on the CPU without
# its reconstruction term, and without its clustering terms; all 55,000 images, 20 epochs, seeds 0-2.
#   bash scripts/ablations-cpu.sh        (from the repository root; about 40 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/ablations-cpu}; HERE=outputs/sweeps/ablations; mkdir -p "$OUT"
CHOSEN=(model=conv optimizer=adam loss=iic trainer.epochs=20 scheduler=cosine loss.iic_lambda=1.8006090900704466
        loss.warmup_epochs=0 augment.rotation=24.138986725502335 augment.scale=0.02744186427121529
        augment.translate=0.042574252943691875 augment.noise=0.12121663687176579 'model.channels=[16,32,64]'
        optimizer.lr=0.0003015646895158142 trainer.batch_size=512 device=cpu trainer.threads="$(nproc)" trainer.amp=false)
ablate() {  # name, then the overrides that switch a term off
  local name=$1; shift
  "$PY" train.py -m sweep=seeds "${CHOSEN[@]}" "$@" hydra.sweeper.study_name="full-chosen-$name" \
    hydra.sweeper.storage="$HERE/journal.log" hydra.sweep.dir="$HERE/$name"
  cp "$HERE/$name/trials.csv" "$OUT/$name-trials.csv"
}
ablate no-recon loss.recon_weight=0 loss.balance_weight=1.0
ablate no-clustering loss.recon_weight=0.04035485101147012 loss.iic_weight=0 loss.balance_weight=0
