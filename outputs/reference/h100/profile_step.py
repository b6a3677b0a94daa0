"""Where one training step's time goes, kernel by kernel: the next look at the H100's 0.15 s/epoch target.

    python3 outputs/reference/h100/profile_step.py [--device cuda] [--steps 50] [OVERRIDE ...]

Builds the step exactly as a run does (`aesweep.train.build_training`: on CUDA the whole step is one
captured CUDA graph), times `--steps` steps on one fixed batch, then profiles as many more with
torch.profiler and prints the ops sorted by device time (by CPU time on a CPU). Any Hydra override
of the project config can follow, e.g. `trainer.batch_size=512 optimizer.lr=0.04`.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from aesweep.bench import checked_config
from aesweep.data import load_splits
from aesweep.train import apply_process_settings, build_training, channels_last

WARMUP_STEPS = 10  # more than TrainingStep's eager warm-up plus the capture


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    cfg, device = checked_config([f"device={args.device}", "trainer.progress=false", *args.overrides])
    apply_process_settings(cfg.trainer)
    splits = load_splits(cfg.data, device)
    step = build_training(cfg, splits, device)
    x = splits.train.batch(torch.arange(cfg.trainer.batch_size, device=device))
    if channels_last(cfg.trainer, device):
        x = x.contiguous(memory_format=torch.channels_last)
    step.start_epoch(0)
    for _ in range(WARMUP_STEPS):
        step(x)
    sync(device)

    start = time.perf_counter()
    for _ in range(args.steps):
        step(x)
    sync(device)
    per_step = (time.perf_counter() - start) / args.steps
    images_per_epoch = 60_000
    print(f"{device.type}, batch {cfg.trainer.batch_size}, graphed={step.graphed}, amp={step.amp}: "
          f"{per_step * 1e3:.3f} ms per step = {per_step * images_per_epoch / cfg.trainer.batch_size:.3f} "
          f"s per 60,000-image epoch (unprofiled, {args.steps} steps)")

    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            step(x)
        sync(device)
    sort_by = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort_by, row_limit=40, max_name_column_width=60))


if __name__ == "__main__":
    main()
