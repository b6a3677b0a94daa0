# Which pruner would have paid? Replays pruners over the recorded learning curves of the unpruned sweeps
# in $OUT/off-seed*/ (trials.csv and each trial's history.csv, copied from run.sh's sweep folders) -
# seconds, no training. The first two are pruners run.sh measured, so the replay can be checked against
# real pruned sweeps (docs/performance.md, "Pruning that pays"). From the repository root:
#   bash outputs/reference/cpu-2core/pruning-long/replay.sh                         (15-epoch trials, seeds 0-3)
#   OUT=outputs/reference/cpu-2core/pruning-30ep EPOCHS=30 bash outputs/reference/cpu-2core/pruning-long/replay.sh
OUT=${OUT:-outputs/reference/cpu-2core/pruning-long}; PY=${PY:-.venv/bin/python}; P=optuna.pruners
$PY -m aesweep bench pruning $OUT/off-seed* \
  --replay "{_target_: $P.SuccessiveHalvingPruner, min_resource: 1, reduction_factor: 3}" \
  --replay "{_target_: $P.SuccessiveHalvingPruner, min_resource: 3, reduction_factor: 3}" \
  --replay "{_target_: $P.SuccessiveHalvingPruner, min_resource: 2, reduction_factor: 3}" \
  --replay "{_target_: $P.SuccessiveHalvingPruner, min_resource: 3, reduction_factor: 4}" \
  --replay "{_target_: $P.SuccessiveHalvingPruner, min_resource: 5, reduction_factor: 3}" \
  --replay "{_target_: $P.HyperbandPruner, min_resource: 1, max_resource: ${EPOCHS:-15}, reduction_factor: 3}" \
  --replay "{_target_: $P.HyperbandPruner, min_resource: 3, max_resource: ${EPOCHS:-15}, reduction_factor: 3}" \
  --replay "{_target_: $P.MedianPruner, n_startup_trials: 5, n_warmup_steps: 2}" \
  --replay "{_target_: $P.MedianPruner, n_startup_trials: 5, n_warmup_steps: 4}" \
  --replay "{_target_: $P.PercentilePruner, percentile: 33, n_startup_trials: 5, n_warmup_steps: 2}" \
  --target ${TARGET:-0.96,0.97,unpruned-best} --out $OUT/replay.csv
