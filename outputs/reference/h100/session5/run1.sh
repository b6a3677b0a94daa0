# Session 5's first command on a lent H100 (340 s there; BUDGET_S bounds it, default 565):
#   bash outputs/reference/h100/session5/run1.sh   (from the repository root; everything lands in $OUT/results.tgz)
# 1. profile_step.py: the default step (graphed) at batch 128 profiled kernel by kernel, and beside it in
#    the same process channels-last, bf16 and convolutions as explicit im2col GEMMs (an experiment;
#    `--profile` was a flag for the first variant when this ran, hence `--profile default` now);
# 2. the bench's rows for what might close 0.335 -> 0.15 s/epoch inside the whole-step graph
#    (default+channels_last, default+compile), with eager as the loss reference;
# 3. pruning.sh with the time left (12 trials per arm).
[ -n "$DRY_RUN" ] || source outputs/reference/h100/setup.sh || exit 1  # DRY_RUN=1 DEV=cpu MODES=default,eager: this machine
RES=/tmp/session5; mkdir -p $RES; OUT=${OUT:-$PWD/h100-results}; mkdir -p $OUT; DEV=${DEV:-cuda}
pack() { tar czf $OUT/results.tgz -C $RES .; }
stamp() { echo "== ${SECONDS}s $*" | tee -a $RES/phases.txt; }

stamp variants
timeout 120 python3 outputs/reference/h100/profile_step.py --device $DEV --profile default \
  --variants default,channels_last,amp,conv-gemm > $RES/profile-batch128.txt 2>&1
grep -E "per step|failed|difference" $RES/profile-batch128.txt; pack

stamp bench
timeout 150 python3 -m aesweep bench --device $DEV --modes ${MODES:-default,eager,default+channels_last,default+compile} \
  --warmup 10 --steps 150 --repeats 3 --timeout 90 --out $RES/speed.csv > /dev/null 2> $RES/speed.err
cut -d'|' -f2,8,9,17,18,21 $RES/speed.md | head -8; pack

stamp pruning
LIMIT_S=$(( ${BUDGET_S:-565} - SECONDS - 40 )) SET_UP=1 OUT=$RES TRIALS=${TRIALS:-12} \
  bash outputs/reference/h100/pruning.sh 2>&1 | tee $RES/pruning.txt
stamp done; pack
