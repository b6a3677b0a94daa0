"""Where one training step's time goes, kernel by kernel (toward the H100's 0.15 s/epoch target).

    python3 outputs/reference/h100/profile_step.py [--device cuda] [--steps 200] [--variants A,B] [--profile A]
                                                   [--tiles TILES.json] [OVERRIDE ...]

Builds the step exactly as a run does (`aesweep.train.build_training`: on CUDA the whole step is one
captured CUDA graph) once per variant, in this one process, times `--steps` steps on one fixed batch,
and prints ms per step and the 60,000-image epoch that implies. `--profile NAME` then profiles that
variant with torch.profiler and prints its ops sorted by device time (by CPU time on a CPU). Any Hydra
override of the project config can follow, e.g. `trainer.batch_size=512 optimizer.lr=0.04`.

Variants are override sets on top of the default, plus two experiments that are not config keys:
`conv-gemm` swaps each convolution for an explicit im2col (unfold) + matrix product, with the same
parameters (cuDNN's kernels for 1-10 channels may be latency-bound, where one GEMM per layer is not),
and `cudnn-all-algos` lets cuDNN's benchmark time every algorithm instead of its default 10.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from aesweep.train import checked_config
from aesweep.data import load_splits
from aesweep.train import apply_process_settings, build_training, channels_last

WARMUP_STEPS = 10  # more than TrainingStep's eager warm-up plus the capture
FAST = ["trainer.channels_last=true", "trainer.matmul_precision=high", "optimizer.fused=true"]
COMPILE = ["trainer.compile=true", "trainer.compile_mode=default"]
VARIANTS = {
    "default": [],
    "channels_last": ["trainer.channels_last=true"],
    "amp": ["trainer.amp=true"],
    "tf32": ["trainer.matmul_precision=high"],
    "fused": ["optimizer.fused=true"],
    "cudnn-all-algos": [],  # cuDNN's benchmark tries every algorithm, not its default 10 (not a config key)
    "compile": COMPILE,
    "conv-gemm": [],
    "fast": FAST,
    "fast+compile": FAST + COMPILE,
    "fast+autotune": FAST + ["trainer.compile=true", "trainer.compile_mode=max-autotune-no-cudagraphs"],
    "triton": ["trainer.conv_kernels=triton"],  # session 7: aesweep.kernels instead of cuDNN
    "triton+tf32+fused": ["trainer.conv_kernels=triton", "trainer.matmul_precision=high", "optimizer.fused=true"],
    "triton+tf32+fused+compile": ["trainer.conv_kernels=triton", "trainer.matmul_precision=high",
                                  "optimizer.fused=true"] + COMPILE,
}


class GemmConv2d(nn.Module):
    """nn.Conv2d (stride 1, no padding) as unfold + one batched matrix product, on the conv's own parameters."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.weight, self.bias, self.k = conv.weight, conv.bias, conv.kernel_size[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        cols = F.unfold(x, self.k)  # [N, C*k*k, L]
        out = self.weight.flatten(1) @ cols + self.bias[:, None]  # [N, O, L]
        return out.view(n, -1, h - self.k + 1, w - self.k + 1)


class GemmConvTranspose2d(nn.Module):
    """nn.ConvTranspose2d (stride 1, no padding) as one batched matrix product + fold (col2im)."""

    def __init__(self, conv: nn.ConvTranspose2d):
        super().__init__()
        self.weight, self.bias, self.k = conv.weight, conv.bias, conv.kernel_size[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        cols = self.weight.flatten(1).t() @ x.reshape(n, c, h * w)  # [N, O*k*k, H*W]
        out = F.fold(cols, (h + self.k - 1, w + self.k - 1), self.k)
        return out + self.bias[:, None, None]


def swap_convs_for_gemm(model: nn.Module) -> None:
    for seq in (model.encoder, model.decoder):
        for i, layer in enumerate(seq):
            if isinstance(layer, nn.ConvTranspose2d):
                seq[i] = GemmConvTranspose2d(layer)
            elif isinstance(layer, nn.Conv2d):
                seq[i] = GemmConv2d(layer)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(name: str, args):
    cfg, device = checked_config([f"device={args.device}", "trainer.progress=false", *VARIANTS[name],
                                  *args.overrides])
    apply_process_settings(cfg.trainer)
    torch.backends.cudnn.benchmark_limit = 0 if name == "cudnn-all-algos" else 10  # 10: torch's default
    splits = load_splits(cfg.data, device)
    step = build_training(cfg, splits, device)
    if name.startswith("conv-gemm"):
        with torch.no_grad():
            x = splits.train.batch(torch.arange(8, device=device))
            reference = step.model.parts(x)[2]
            swap_convs_for_gemm(step.model)
            error = (step.model.parts(x)[2] - reference).abs().max().item()
        print(f"conv-gemm: max |reconstruction difference| vs cuDNN convs = {error:.2e}")
    x = splits.train.batch(torch.arange(cfg.trainer.batch_size, device=device))
    if channels_last(cfg.trainer, device):
        x = x.contiguous(memory_format=torch.channels_last)
    return cfg, device, step, x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--variants", default="default", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--profile", metavar="VARIANT", help="profile this variant's steps")
    parser.add_argument("--tiles", type=Path, help="tiles for aesweep.kernels, as tune_kernels.py --json wrote them")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.tiles:
        from aesweep import kernels

        kernels.TUNED_TILES.update(json.loads(args.tiles.read_text()))
        print(f"tiles from {args.tiles}: {kernels.TUNED_TILES}")

    for name in args.variants.split(","):
        try:
            cfg, device, step, x = build(name, args)
            step.start_epoch(0)
            started = time.perf_counter()
            for _ in range(WARMUP_STEPS):
                step(x)
            sync(device)
            warmup_s = time.perf_counter() - started
            start = time.perf_counter()
            for _ in range(args.steps):
                step(x)
            sync(device)
        except Exception as exc:  # one variant failing (e.g. no compiler for inductor) must not hide the rest
            print(f"{name}: failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        per_step = (time.perf_counter() - start) / args.steps
        print(f"{name}: {device.type}, batch {cfg.trainer.batch_size}, graphed={step.graphed}, amp={step.amp}: "
              f"{per_step * 1e3:.3f} ms per step = {per_step * 60_000 / cfg.trainer.batch_size:.3f} "
              f"s per 60,000-image epoch (unprofiled, {args.steps} steps; warm-up {warmup_s:.1f} s)", flush=True)

        if args.profile == name:
            on_gpu = device.type == "cuda"
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
            with profile(activities=activities) as prof:
                for _ in range(args.steps):
                    step(x)
                sync(device)
            sort_by = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
            print(prof.key_averages().table(sort_by=sort_by, row_limit=40, max_name_column_width=60), flush=True)


if __name__ == "__main__":
    main()
