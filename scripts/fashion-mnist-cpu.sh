#!/usr/bin/env bash
# fashion-mnist-cpu: Fashion-MNIST (data=fashion_mnist) on the 2-core CPU at the budget make sweep had when it was
# measured (20,000 images, 6 epochs, one torch thread per run, two runs at a time), every figure over 3 seeds:
#   1. the blog's recipe (sweep=baseline), seeds 0-2;
#   2. the MNIST recipe that make sweep found then ($OUT/mnist-recipe.yaml, its best.yaml), unchanged, seeds 10-12;
#   3. sweep=default searched on Fashion-MNIST as make sweep searches MNIST (each trial over seeds 0-2, its
#      value the worst seed; a 16-minute box) and its best trial confirmed on fresh seeds 10-12; the sweep's
#      summary states its gain over 1., kept in the same storage.
# Each part's run records (with their confusion matrices) and a README with test mapped accuracy, Hungarian
# accuracy and NMI (mean +- sd), the commands, the machine and the date go to $OUT.
#   bash scripts/fashion-mnist-cpu.sh    (from the repository root after `make data`; about 35 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/fashion-mnist-cpu}
BASELINE=outputs/sweeps/baseline/fashion-mnist-cpu; MNIST_RUNS=outputs/runs/fashion-mnist-cpu-mnist-recipe
SWEEP=outputs/sweeps/default/fashion-mnist-cpu; STORAGE=outputs/sweeps/fashion-mnist-cpu.journal.log
mapfile -t MNIST_RECIPE < <(sed -n 's/^- //p' "$OUT/mnist-recipe.yaml")
BUDGET=(data.subset=20000 trainer.epochs=6)  # pinned: the budget of these figures, whatever sweeps/ say

"$PY" -m aesweep data verify --dataset fashion_mnist   # one error line, and no run, where make data could not prepare it
rm -rf "$BASELINE" "$MNIST_RUNS" "$SWEEP" "$STORAGE"
mkdir -p "$OUT" "$(dirname "$SWEEP")" "$MNIST_RUNS"  # the sweep's log lies beside its folder
started=$(date -u '+%Y-%m-%d %H:%M UTC'); SECONDS=0

BASELINE_CMD=(train.py -m sweep=baseline data=fashion_mnist "${BUDGET[@]}" hydra.sweeper.storage="$STORAGE" hydra.sweep.dir="$BASELINE")
MNIST_CMD=(train.py "${MNIST_RECIPE[@]}" data=fashion_mnist "${BUDGET[@]}")
SWEEP_CMD=(train.py -m sweep=default data=fashion_mnist "${BUDGET[@]}" hydra.sweeper.storage="$STORAGE" hydra.sweep.dir="$SWEEP")
"$PY" "${BASELINE_CMD[@]}"
for seed in 10 11 12; do  # two at a time, one thread each, as in the sweep
  "$PY" "${MNIST_CMD[@]}" seed=$seed hydra.run.dir="$MNIST_RUNS/seed$seed" > "$MNIST_RUNS/seed$seed.log" 2>&1 &
  if [ "$seed" = 11 ]; then wait; fi
done
wait
"$PY" "${SWEEP_CMD[@]}" | tee "$SWEEP.log"
minutes=$(( SECONDS / 60 ))

# The evidence: each part's run records, the sweep's tables and summary, one leaderboard over all of them.
TABLES=outputs/sweeps/fashion-mnist-cpu-tables; mkdir -p "$TABLES"  # each part's runs, read for the README's rows
"${AESWEEP[@]}" collect "$BASELINE" --out "$TABLES/baseline-runs.csv"
"${AESWEEP[@]}" collect "$MNIST_RUNS"/seed*/ --out "$TABLES/mnist-recipe-runs.csv"
"${AESWEEP[@]}" collect "$SWEEP" --out "$TABLES/sweep-runs.csv"
cp "$SWEEP/trials.csv" "$SWEEP/confirm.csv" "$SWEEP/best.yaml" "$OUT/"
sed -n '/^Study /,$p' "$SWEEP.log" > "$OUT/sweep-summary.txt"

# summary PART_RUNS_CSV ROLE OUT_FOLDER LABEL: copy the COMPLETE runs' records (of that sweep role; "run" for
# single runs) to OUT_FOLDER/metrics_seed<s>.json and
# print one markdown row: runs, seeds, test mapped_acc, hungarian_acc (%) and NMI as mean +- sd over the runs.
summary() {
  "$PY" - "$@" <<'PYTHON'
import shutil, sys
from pathlib import Path
import pandas as pd
runs_csv, role, out, label = sys.argv[1:]
runs = pd.read_csv(runs_csv)
role_of = runs["role"].fillna("run") if "role" in runs else pd.Series("run", index=runs.index)
runs = runs[(runs["state"] == "COMPLETE") & (role_of == role)].sort_values("seed")
Path(out).mkdir(parents=True, exist_ok=True)
for _, run in runs.iterrows():
    shutil.copy(Path(run["run_dir"]) / "metrics.json", Path(out) / f"metrics_seed{int(run['seed'])}.json")
def spread(column, scale, digits):
    values = runs[column].astype(float) * scale
    return f"{values.mean():.{digits}f} +- {values.std(ddof=1):.{digits}f}" if len(values) > 1 else f"{values.mean():.{digits}f}"
seeds = ", ".join(str(int(s)) for s in runs["seed"])
print(f"| {label} | {len(runs)} | {seeds} | {spread('test.mapped_acc', 100, 1)}% | "
      f"{spread('test.hungarian_acc', 100, 1)}% | {spread('test.nmi', 1, 3)} |")
PYTHON
}
rows=$(
  summary "$TABLES/baseline-runs.csv" search "$OUT/baseline" "the blog's recipe (\`sweep=baseline\`: 20,000 images, 6 epochs)"
  summary "$TABLES/mnist-recipe-runs.csv" run "$OUT/mnist-recipe" "the MNIST recipe \`make sweep\` found, unchanged"
  summary "$TABLES/sweep-runs.csv" confirm "$OUT/sweep-confirmed" "\`sweep=default\`'s best trial, confirmed on fresh seeds"
)

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)$(grep -q avx512_bf16 /proc/cpuinfo && echo " (AVX512-BF16)")
torch=$("$PY" -c 'import torch; print(torch.__version__)')
as_typed() { "$PY" -c 'import shlex, sys; print(shlex.join(["python", *sys.argv[1:]]))' "$@"; }
cat > "$OUT/README.md" <<README
# fashion-mnist-cpu: the blog's recipe, the MNIST recipe and a sweep of its own on Fashion-MNIST

- **Machine:** $cpu, $(nproc --all) cores, torch $torch, no GPU.
- **Date:** $started ($minutes minutes).
- **Regenerate:** \`bash scripts/fashion-mnist-cpu.sh\`.

What it shows: test scores on Fashion-MNIST's 10,000 test images (argmax readout of the 10-wide bottleneck, the
cluster-to-class mapping fitted on the training split), mean +- sd over the runs:

| configuration | runs | seeds | test mapped_acc | test hungarian_acc | test NMI |
|---|---:|---|---:|---:|---:|
$rows

| file | what |
|---|---|
| \`baseline/\`, \`mnist-recipe/\`, \`sweep-confirmed/\` | each part's run records \`metrics_seed<s>.json\` (confusion matrices included) |
| \`trials.csv\`, \`confirm.csv\`, \`best.yaml\` | the sweep: its trials over seeds 0-2, the best trial's runs on seeds 10-12, its overrides |
| \`mnist-recipe.yaml\` | the MNIST recipe of part 2: \`make sweep\`'s best.yaml when these ran (20,000 images, 6 epochs) |
| \`sweep-summary.txt\` | the sweep's printed summary, with its gain over the baseline study \`baseline-fashion_mnist\` |

Commands, from the repository root (\`$STORAGE\` holds the studies; the MNIST recipe ran on seeds 10, 11, 12):

\`\`\`bash
$(as_typed "${BASELINE_CMD[@]}")
$(as_typed "${MNIST_CMD[@]}")
$(as_typed "${SWEEP_CMD[@]}")
\`\`\`

\`run_dir\` columns name folders on the machine that ran them.
README
echo "written: $OUT"
