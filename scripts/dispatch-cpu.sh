#!/usr/bin/env bash
# dispatch-cpu: `aesweep bench dispatch` - the pruned sweep=default (each trial over its 3 seeds, then one seed
# a trial) with runs started as slots free (dispatch=async) and in batches (dispatch=batch), 3 pairs
# alternating which goes first; then `aesweep bench overhead` - 1,000 trials that do nothing, for what the
# sweeper itself costs.
# On an otherwise idle CPU; it prints the CPU's vector flags first. Keeps the markdown tables.
#   bash scripts/dispatch-cpu.sh       (from the repository root; about 70 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/dispatch-cpu}; mkdir -p "$OUT"
grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|fma|amx)' | tr '\n' ' '; echo   # for the README
"${AESWEEP[@]}" bench dispatch --sweep default --override data.subset=3000 --trials 8 --slots 2 --pairs 3 \
  --out "$OUT/dispatch.csv"
# One seed per trial, pruned from the first epoch on: the profile the barrier costs most on (a pruned trial's
# slot waits for a whole trial beside it), as in any search that ranks trials by one run.
"${AESWEEP[@]}" bench dispatch --sweep default --override 'hydra.sweeper.seeds=[0]' \
  --override hydra.sweeper.pruner.n_warmup_steps=0 --override data.subset=8000 --trials 16 --slots 2 --pairs 3 \
  --out "$OUT/dispatch-one-seed.csv"
# --trial-seconds: the reference trial the overhead is a fraction of (a make-sweep trial takes 259 s of runs, median)
"${AESWEEP[@]}" bench overhead --trials 1000 --trial-seconds "${TRIAL_SECONDS:-60}" --out "$OUT/overhead.csv"
rm -f "$OUT/dispatch.csv" "$OUT/dispatch-one-seed.csv" "$OUT/overhead.csv"
