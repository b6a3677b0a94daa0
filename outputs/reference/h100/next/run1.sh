# Prepared in session 8 (no GPU lent) for the next session that has an H100: what #5's 0.15 s/epoch target
# still needs measured. Session 7 left the default at 0.230 s/epoch (0.195 s with TF32 + fused Adam); the
# Triton weight-gradient launches were 40% of the step's GPU time. Session 8 gave them two new ways to sum
# (tile options `unroll`: the row loop unrolled, as the convolutions' loops are; `partials`: per-program sums
# and one torch.sum instead of atomic adds into zeroed outputs) and tune_kernels.py 26 tile configurations.
#   bash outputs/reference/h100/next/run1.sh     (from the repository root; ~7 min; everything in $OUT/results.tgz)
# 1. tests/test_kernels.py (every tiling, compiled for real) and the graphed-step test on triton;
# 2. tune_kernels.py for the weight-gradient launches -> tuned.json;
# 3. profile_step.py: the step with the committed tiles, then with tuned.json, same sitting;
# 4. the bench as committed: default, default+cudnn, default+tf32+fused.
# Then: copy the winners from tuned.json into kernels.TUNED_TILES and bench again (next/run2.sh).
[ -n "$DRY_RUN" ] || source outputs/reference/h100/setup.sh || exit 1  # DRY_RUN=1 DEV=cpu: phases that run on a CPU
RES=/tmp/next-run1; mkdir -p $RES; OUT=${OUT:-$PWD/h100-results}; mkdir -p $OUT; DEV=${DEV:-cuda}
pack() { tar czf $OUT/results.tgz -C $RES .; }
stamp() { echo "== ${SECONDS}s $*" | tee -a $RES/phases.txt; }

stamp tests
timeout 120 python3 -m pytest -q -p no:cacheprovider --tb=short tests/test_kernels.py \
  "tests/test_cuda.py::test_graphed_step_on_triton_convolutions_trains_like_cudnn" > $RES/pytest.txt 2>&1
grep -E "^E |passed|failed" $RES/pytest.txt | head -12; pack

stamp tune
timeout 170 python3 outputs/reference/h100/tune_kernels.py --only wgrad,bgrad --json $RES/tuned.json > $RES/tune.txt 2>&1
grep -v "^  " $RES/tune.txt | grep -E "failed" | cut -c1-120; sed -n '/fastest per/,$p' $RES/tune.txt; pack

stamp profile
VARIANTS=${VARIANTS:-triton,triton+tf32+fused}
timeout 50 python3 outputs/reference/h100/profile_step.py --device $DEV --variants $VARIANTS > $RES/profile-committed.txt 2>&1
grep -E "per step|rror" $RES/profile-committed.txt
[ -s $RES/tuned.json ] && timeout 50 python3 outputs/reference/h100/profile_step.py --device $DEV --variants $VARIANTS \
  --tiles $RES/tuned.json > $RES/profile-tuned.txt 2>&1
grep -E "per step|rror" $RES/profile-tuned.txt; pack

stamp bench
timeout 100 python3 -m aesweep bench --device $DEV --modes ${MODES:-default,default+cudnn,default+tf32+fused} \
  --warmup 10 --steps 150 --repeats 3 --timeout 60 --out $RES/speed.csv > /dev/null 2> $RES/speed.err
cut -d'|' -f2,8,9,17,18,21 $RES/speed.md | tail -n +3 | head -4 || true; tail -3 $RES/speed.err; stamp done; pack
