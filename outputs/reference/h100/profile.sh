# Prepared for the next GPU session (not yet run on a GPU): where the 0.335 s/epoch of the default
# step goes, and whether inductor's fusion beats the hand-captured graph, toward the 0.15 s target.
#   bash outputs/reference/h100/profile.sh     (from the repository root; about 4 minutes on an H100)
# 1. profile_step.py at batch 128 (the target's) and 512: unprofiled ms/step, then ops by GPU time;
# 2. the bench's torch.compile rows (mode reduce-overhead: inductor kernels inside its own CUDA graphs)
#    beside default and eager, same sitting.
[ -n "$DRY_RUN" ] || source outputs/reference/h100/setup.sh || exit 1  # DRY_RUN=1 DEV=cpu MODES=default,eager,compile: this machine
OUT=${OUT:-$PWD/h100-results}; mkdir -p $OUT; DEV=${DEV:-cuda}
timeout 90 python3 outputs/reference/h100/profile_step.py --device $DEV > $OUT/profile-batch128.txt 2>&1
head -1 $OUT/profile-batch128.txt
timeout 90 python3 outputs/reference/h100/profile_step.py --device $DEV trainer.batch_size=512 optimizer.lr=0.04 \
  > $OUT/profile-batch512.txt 2>&1
head -1 $OUT/profile-batch512.txt
timeout 240 python3 -m aesweep bench --device $DEV --modes ${MODES:-default,eager,compile,compile+amp} \
  --warmup 10 --steps ${STEPS:-150} --repeats 3 --timeout 100 --out $OUT/compile.csv > /dev/null 2> $OUT/compile.err
cut -d'|' -f2,8,9,18,21 $OUT/compile.md | head -8
