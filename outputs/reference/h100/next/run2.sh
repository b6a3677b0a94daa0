# The second command of the next H100 session, after run1.sh's tuned.json is copied into
# aesweep.kernels.TUNED_TILES (the fastest per launch; leave a launch's entry alone where run1 shows no gain):
#   bash outputs/reference/h100/next/run2.sh     (from the repository root; ~4 min; everything in $OUT/results.tgz)
# 1. the bench with those tiles: default, default+cudnn, default+tf32+fused (the 0.15 s/epoch target's figure);
# 2. whether TF32 matrix products and the fused Adam keep val.mapped_acc: the seed recipe (all 55,000 images,
#    20 epochs) at seeds 0-2 with each of the four combinations (they are off by default until this is known);
# 3. tests/test_kernels.py and the graphed-step test once more, on the committed tiles.
[ -n "$DRY_RUN" ] || source outputs/reference/h100/setup.sh || exit 1  # DRY_RUN=1 DEV=cpu: phases that run on a CPU
RES=/tmp/next-run2; RUNS=/tmp/next-accuracy; mkdir -p $RES; OUT=${OUT:-$PWD/h100-results}; mkdir -p $OUT
DEV=${DEV:-cuda}
pack() { tar czf $OUT/results.tgz -C $RES .; }  # run folders stay out: their model.pt files are too big to return
stamp() { echo "== ${SECONDS}s $*" | tee -a $RES/phases.txt; }

stamp bench
timeout 100 python3 -m aesweep bench --device $DEV --modes ${MODES:-default,default+cudnn,default+tf32+fused} \
  --warmup 10 --steps 150 --repeats 3 --timeout 60 --out $RES/speed.csv > /dev/null 2> $RES/speed.err
cut -d'|' -f2,8,9,17,18,21 $RES/speed.md | tail -n +3 | head -4 || true; tail -3 $RES/speed.err; pack

stamp accuracy
timeout 200 python3 train.py -m device=$DEV seed=0,1,2 trainer.matmul_precision=highest,high \
  optimizer.fused=false,true ${ACC_ARGS:-} hydra.sweep.dir=$RUNS > $RES/accuracy.txt 2>&1
RUNS=$RUNS python3 - <<'PY' | tee $RES/accuracy.md
import json, os, pathlib
print("| run | overrides | status | seconds | val.mapped_acc | test.mapped_acc |\n|---|---|---|---:|---:|---:|")
for f in sorted(pathlib.Path(os.environ["RUNS"]).glob("*/metrics.json"), key=lambda p: int(p.parent.name)):
    m = json.loads(f.read_text())
    o = [x.strip("- ") for x in (f.parent / ".hydra/overrides.yaml").read_text().splitlines() if "device" not in x]
    val, test = m.get("val") or {}, m.get("test") or {}
    print(f"| {f.parent.name} | {' '.join(o)} | {m['status']} | {m['seconds']:.1f} | {val.get('mapped_acc')} | "
          f"{test.get('mapped_acc')} |")
PY
pack

stamp tests
timeout 100 python3 -m pytest -q -p no:cacheprovider --tb=short tests/test_kernels.py \
  "tests/test_cuda.py::test_graphed_step_on_triton_convolutions_trains_like_cudnn" > $RES/pytest.txt 2>&1
grep -E "^E |passed|failed" $RES/pytest.txt | head -12; stamp done; pack
