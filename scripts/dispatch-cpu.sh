#!/usr/bin/env bash
# dispatch-cpu: `aesweep bench dispatch` - the pruned sweep=default (each trial over its 3 seeds) with runs
# started as slots free (dispatch=async) and in batches (dispatch=batch), 3 pairs alternating which goes
# first; then `aesweep bench overhead` - 1,000 trials that do nothing, for what the sweeper itself costs.
# On an otherwise idle CPU; the CPU's flags go into flags.txt.
#   bash scripts/dispatch-cpu.sh       (from the repository root; about 30 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/dispatch-cpu}; mkdir -p "$OUT"
grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|fma|amx|sse4)' | tr '\n' ' ' > "$OUT/flags.txt"
echo >> "$OUT/flags.txt"
"${AESWEEP[@]}" bench dispatch --sweep default --override data.subset=4000 --trials 10 --slots 2 --pairs 3 \
  --out "$OUT/dispatch.csv" 2>&1 | tee "$OUT/dispatch.log"
# --trial-seconds: the median seconds of a complete make-sweep trial (outputs/reference/make-sweep-cpu/trials.csv)
"${AESWEEP[@]}" bench overhead --trials 1000 --trial-seconds "${TRIAL_SECONDS:-60}" --out "$OUT/overhead.csv"
