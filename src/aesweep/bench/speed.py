"""`aesweep bench [speed]`: how fast the project trains, measured side by side with the blog's own loop.

Speed is the default subcommand. Every mode runs in a fresh Python process, so each gets a clean thread
pool, a clean compile state and its own peak resident memory. A mode is a list of Hydra overrides on
the composed project config (`conf/`), so it measures exactly what those config switches do:
  blog-loop      the blog's loop as written: torchvision MNIST + ToTensor, DataLoader(batch_size,
                 shuffle=True, num_workers=4), MSELoss, SGD(lr=0.01, momentum=0.5); model from the config
  default        the project's loop with the config's own defaults (the row the targets are about)
  eager          the project's loop with every speed switch off
  channels_last, cuda_graph, compile, amp, threads=N, batch=B   eager plus that switch (batch=B scales the lr
                 linearly with the batch size); on a CPU with native bf16 also channels_last+amp
The project rows build the model, optimizer, schedule and loss with `aesweep.train.build_training` (as
`aesweep.train.run` does) and time the real `aesweep.train.train_one_epoch` over W warm-up steps, then
N timed steps (median of R repeats); seconds per epoch are extrapolated to a 60,000-image epoch. The
arithmetic floor is the FLOPs of one forward+backward step (torch.utils.flop_counter.FlopCounterMode)
times the steps of an epoch, divided by the matrix-multiply rate measured on the same device and
threads in the same process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from aesweep.bench.common import (base_overrides, checked_out, machine_description, rounded,
                                  write_table)
from aesweep.errors import ConfigError
from aesweep.io import writing_to

EPOCH_IMAGES = 60_000  # the blog's epoch: every MNIST training image once
LARGE_BATCHES = (512, 1024)


# ----------------------------------------------------------------------------------------------- modes


@dataclass
class Mode:
    """One row of the speed table: which loop, with which overrides on the project config."""

    name: str
    loop: str  # "blog" (the blog's loop) or "project" (aesweep.train.train_one_epoch)
    overrides: list[str] = field(default_factory=list)
    skip: str | None = None  # why this mode is not run on this device
    quick: bool = True  # part of --quick


SPEED_SWITCHES_OFF = ["trainer.compile=false", "trainer.cuda_graph=false", "trainer.cudnn_benchmark=false",
                      "trainer.channels_last=false", "trainer.amp=false", "trainer.threads=null"]


def speed_modes(device_type: str, base_batch: int, base_lr: float, cpu_count: int,
                native_bf16: bool = False) -> list[Mode]:
    """Every mode the bench knows for this device, in table order (`native_bf16`: the CPU computes in bf16)."""
    eager = list(SPEED_SWITCHES_OFF)
    on_gpu = device_type == "cuda"
    modes = [
        Mode("blog-loop", "blog"),
        Mode("default", "project"),
        Mode("eager", "project", eager),
        Mode("channels_last", "project", eager + ["trainer.channels_last=true"]),
        Mode("compile", "project",
             eager + ["trainer.compile=true", f"trainer.compile_mode={'reduce-overhead' if on_gpu else 'default'}"],
             quick=on_gpu),  # a cold inductor compile alone takes ~40 s on 2 CPU cores
        Mode("amp", "project", eager + ["trainer.amp=true"],
             skip=None if on_gpu or native_bf16 else "this CPU has no native bf16 (trainer.amp=true is refused here)"),
    ]
    if on_gpu:
        modes += [
            Mode("cudnn_benchmark", "project", eager + ["trainer.cudnn_benchmark=true"]),
            Mode("cuda_graph", "project", eager + ["trainer.cuda_graph=true"]),
            Mode("cuda_graph+amp", "project", eager + ["trainer.cuda_graph=true", "trainer.amp=true"]),
            Mode("compile+amp", "project", eager + ["trainer.compile=true", "trainer.compile_mode=reduce-overhead",
                                                    "trainer.amp=true"], quick=False),
            # on top of the default (whole-step graph + cuDNN benchmark): what is left inside the graph
            Mode("default+channels_last", "project", ["trainer.channels_last=true"]),
            Mode("default+compile", "project", ["trainer.compile=true", "trainer.compile_mode=default"], quick=False),
            Mode("default+compile-autotune", "project",
                 ["trainer.compile=true", "trainer.compile_mode=max-autotune-no-cudagraphs"], quick=False),
        ]
    else:
        counts = sorted({1, cpu_count, *(n for n in (2, 4, 8) if n < cpu_count)})
        modes += [Mode(f"threads={n}", "project", eager + [f"trainer.threads={n}"]) for n in counts]
        if native_bf16:
            modes.append(Mode("channels_last+amp", "project",
                              eager + ["trainer.channels_last=true", "trainer.amp=true"]))
        modes.append(Mode("channels_last+threads=1", "project",
                          eager + ["trainer.channels_last=true", "trainer.threads=1"], quick=False))
    for batch in LARGE_BATCHES:
        if batch > base_batch:
            lr = base_lr * batch / base_batch
            modes.append(Mode(f"batch={batch}", "project",
                              eager + [f"trainer.batch_size={batch}", f"optimizer.lr={lr:g}"], quick=batch == 1024))
    return modes


# ------------------------------------------------------------------------------------ speed (parent)


class ModeRunner:
    """Starts the mode server on first use and sends it one mode at a time; restarts it after a timeout."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.server: subprocess.Popen | None = None

    def run(self, spec: dict, timeout: float) -> dict:
        import select

        if self.server is None:
            with writing_to(self.log_path):
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                log = self.log_path.open("a")
            with log:
                self.server = subprocess.Popen([sys.executable, "-m", "aesweep.bench", "_serve"], stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        self.server.stdin.write(json.dumps(spec) + "\n")
        self.server.stdin.flush()
        ready, _, _ = select.select([self.server.stdout], [], [], timeout)
        line = self.server.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        reason = f"timed out after {timeout:g} s" if not ready else f"the bench server died (see {self.log_path})"
        self.close(kill=True)
        return {"error": reason}

    def close(self, kill: bool = False) -> None:
        if self.server is None:
            return
        if kill:
            os.killpg(self.server.pid, 9)  # the server and the mode process it forked
        else:
            self.server.stdin.close()
        self.server.wait()
        self.server = None


COLUMNS = ["mode", "loop", "overrides", "device", "threads", "batch_size", "images_per_s", "s_per_epoch", "vs_blog",
           "gflop_per_step", "tflop_per_epoch", "matmul_gflop_per_s", "floor_s_per_epoch", "achieved", "peak_rss_mb",
           "mean_loss", "loss_vs_eager", "warmup_steps", "timed_steps", "note"]


def mode_row(mode: Mode, result: dict, warmup: int, steps: int) -> dict:
    """One table row from a worker's measurements (or the reason there are none)."""
    row = {"mode": mode.name, "loop": "blog" if mode.loop == "blog" else "project",
           "overrides": " ".join(o for o in mode.overrides if o not in SPEED_SWITCHES_OFF)}
    if mode.skip or "error" in result:
        return {**row, "note": f"skipped: {mode.skip}" if mode.skip else f"failed: {result['error']}"}
    seconds = statistics.median(result["seconds"])
    images_per_s = result["images"] / seconds
    batch = result["batch_size"]
    epoch_flops = result["flops_per_step"] * EPOCH_IMAGES / batch
    floor = epoch_flops / result["matmul_flops_per_s"]
    s_per_epoch = EPOCH_IMAGES / images_per_s
    note = f"warm-up {result['warmup_s']:.1f} s"
    if "trainer.compile=true" in mode.overrides:
        note += " incl. compilation"
    if "worker_rss_mb" in result:
        note += f"; largest DataLoader worker {result['worker_rss_mb']:.0f} MB"
    return {
        **row, "device": result["device"], "threads": result["threads"], "batch_size": batch,
        "images_per_s": images_per_s, "s_per_epoch": s_per_epoch,
        "gflop_per_step": result["flops_per_step"] / 1e9, "tflop_per_epoch": epoch_flops / 1e12,
        "matmul_gflop_per_s": result["matmul_flops_per_s"] / 1e9, "floor_s_per_epoch": floor,
        "achieved": floor / s_per_epoch, "peak_rss_mb": result["peak_rss_mb"], "mean_loss": result["mean_loss"],
        "warmup_steps": warmup, "timed_steps": steps * len(result["seconds"]), "note": note,
    }


def speed_table(rows: list[dict]) -> pd.DataFrame:
    """The rows in COLUMNS order, with vs_blog (images/s over the blog loop's) and loss_vs_eager filled in.

    loss_vs_eager compares the mean training loss over the same timed steps with the eager row's, for
    project rows at the eager row's batch size: same seed, same init, same batches, so a mode that keeps
    the math gives a difference at float-rounding level.
    """
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    for column in ("images_per_s", "batch_size", "mean_loss"):
        table[column] = pd.to_numeric(table[column])
    blog = table.loc[table["mode"] == "blog-loop", "images_per_s"].dropna()
    table["vs_blog"] = table["images_per_s"] / blog.iloc[0] if len(blog) else math.nan
    eager = table.loc[(table["mode"] == "eager") & table["mean_loss"].notna()]
    if len(eager):
        same_batch = (table["batch_size"] == eager["batch_size"].iloc[0]) & (table["loop"] == "project")
        reference = eager["mean_loss"].iloc[0]
        table.loc[same_batch, "loss_vs_eager"] = (table.loc[same_batch, "mean_loss"] - reference) / reference
    return table


def selected_modes(modes: list[Mode], names: list[str] | None, quick: bool, device_type: str) -> list[Mode]:
    if names:
        known = [m.name for m in modes]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError("--modes", ",".join(unknown), f"mode names for {device_type}: {', '.join(known)}")
        return [m for m in modes if m.name in names]
    return [m for m in modes if m.quick] if quick else modes


def speed(args: argparse.Namespace) -> int:
    from aesweep.step import native_bf16_cpu
    from aesweep.train import checked_config

    base = base_overrides(args)
    cfg, device = checked_config(base)
    base_batch = int(cfg.trainer.batch_size)

    modes = speed_modes(device.type, base_batch, float(cfg.optimizer.lr), os.cpu_count() or 1,
                        native_bf16=device.type == "cpu" and native_bf16_cpu())
    modes = selected_modes(modes, args.modes, args.quick, device.type)
    out = checked_out(args.out, "bench.csv")

    rows, runner, machine = [], ModeRunner(out.with_suffix(".log")), None
    try:
        for mode in modes:
            batches = [int(o.split("=", 1)[1]) for o in mode.overrides if o.startswith("trainer.batch_size=")]
            steps = max(2, math.ceil(args.steps * base_batch / (batches[-1] if batches else base_batch)))  # same images
            spec = {"loop": mode.loop, "overrides": base + mode.overrides, "warmup": args.warmup, "steps": steps,
                    "repeats": args.repeats}
            result = {} if mode.skip else runner.run(spec, args.timeout)
            machine = result.get("machine", machine)
            rows.append(mode_row(mode, result, args.warmup, steps))
            row = rows[-1]
            shown = f"{row['images_per_s']:.0f} images/s, {row['s_per_epoch']:.1f} s/epoch" if "images_per_s" in row \
                else row["note"]
            print(f"aesweep bench: {mode.name}: {shown}", file=sys.stderr)
    except BaseException:
        runner.close(kill=True)
        raise
    runner.close()

    notes = [
        f"{machine or machine_description(device)}; device {device.type}",
        f"base config: {' '.join(base)}",
        f"s_per_epoch = {EPOCH_IMAGES:,} images / images_per_s, extrapolated from the timed steps after "
        f"{args.warmup} warm-up steps (median of {args.repeats} repeat{'s' if args.repeats > 1 else ''}; "
        "larger batches time the same number of images)",
        "floor_s_per_epoch = FlopCounterMode FLOPs of one forward+backward step x steps per epoch / the "
        "matmul rate measured in the same process (matmul_gflop_per_s); achieved = floor / s_per_epoch",
        "vs_blog = images_per_s / the blog loop's; loss_vs_eager = relative difference of the mean training "
        "loss over the same timed steps (same seed, same batches): a speed mode must not change the math",
        "peak_rss_mb = ru_maxrss of the mode's own process, forked from a server that imported the libraries "
        "(library pages it never touches are not counted; `aesweep bench memory` measures a whole train.py run)",
    ]
    write_table(rounded(speed_table(rows)), notes, out, "aesweep bench")
    return 0
