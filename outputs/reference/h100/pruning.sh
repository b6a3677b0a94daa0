# Does pruning pay on the H100? Run in session 5 with TRIALS=12 (inside session5/run1.sh: 256 s there;
# results in session5/pruning/, read in docs/performance.md, "Pruning that pays").
#   bash outputs/reference/h100/pruning.sh     (from the repository root)
# The headline sweep (sweep=full: all 55,000 images, 20 epochs a trial) in three arms at once on one GPU,
# same sampler seed and trial budget, WORKERS workers each (so every arm sees the same contention):
#   off     hydra.sweeper.pruner=null
#   median  the sweep file's MedianPruner (8 start-up trials, never before epoch 5)
#   sha     SuccessiveHalvingPruner(min_resource=5, reduction_factor=3): keeps the top third at epoch 5 and
#           the top ninth at epoch 15 (first rung at 5, like the median pruner's warm-up: trials with
#           loss.warmup_epochs=2 start slowly, and on the CPU an epoch-1 rung cut the eventual best trial)
# then trial-seconds to each target for each pruner against off (aesweep bench pruning).
# The 2-core CPU comparison (sweep=default, 5-epoch trials): docs/performance.md, "Pruning that pays".
[ -n "$DRY_RUN$SET_UP" ] || source outputs/reference/h100/setup.sh || exit 1  # DRY_RUN=1: this machine, CPU; SET_UP=1: setup.sh already sourced
OUT=${OUT:-$PWD/h100-results}; LOGS=/tmp/pruning-logs; mkdir -p $OUT $LOGS; PIDS=()
TRIALS=${TRIALS:-15}; WORKERS=${WORKERS:-3}; ARMS=${ARMS:-off median sha}
PROCESSES=$(( WORKERS * $(echo $ARMS | wc -w) )); THREADS=$(( $(nproc) / PROCESSES )); [ $THREADS -ge 1 ] || THREADS=1
SHA='hydra.sweeper.pruner={_target_:optuna.pruners.SuccessiveHalvingPruner,min_resource:5,reduction_factor:3}'
for arm in $ARMS; do
  pruner=(); [ $arm = off ] && pruner=(hydra.sweeper.pruner=null); [ $arm = sha ] && pruner=(hydra.sweeper.pruner=null "$SHA")
  for i in $(seq $WORKERS); do
    timeout ${LIMIT_S:-480} python3 train.py -m sweep=full hydra.sweeper.study_name=prune-$arm \
      hydra.sweep.dir=outputs/sweeps/full/prune-$arm hydra.sweeper.n_trials=$TRIALS hydra.sweeper.timeout=null \
      trainer.threads=$THREADS \
      "${pruner[@]}" $EXTRA > $LOGS/$arm-worker$i.log 2>&1 &
    PIDS+=($!)
  done
done
wait "${PIDS[@]}"; tar czf $OUT/logs.tgz -C $LOGS .  # the device returns at most 8 files
for arm in $ARMS; do cp outputs/sweeps/full/prune-$arm/trials.csv $OUT/prune-$arm-trials.csv; done
for arm in median sha; do
  python3 -m aesweep bench pruning outputs/sweeps/full/prune-$arm outputs/sweeps/full/prune-off \
    --target ${TARGET:-0.9,0.95,0.97} --out $OUT/pruning-$arm.csv | tail -n 4
done
