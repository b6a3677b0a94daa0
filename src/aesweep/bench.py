"""`aesweep bench`: how fast the project trains, measured side by side with the seed blog's own loop.

    aesweep bench --quick                          # every CPU speed mode in under a minute on 2 cores
    aesweep bench --device cuda                    # the GPU modes: whole-step CUDA graph, compile, bf16, batches
    aesweep bench --model conv --override model.channels=[32,64,128] --batch-size 256
    aesweep bench trials --concurrency 1,4         # trials/hour: N train.py processes at once vs one at a time
    aesweep bench memory --device cpu              # peak resident memory of one real train.py run
    aesweep bench pruning WITH_DIR WITHOUT_DIR --target 0.8,0.9   # time to target val.mapped_acc, pruner on/off
    aesweep bench pruning WITHOUT_DIR --replay '{_target_: optuna.pruners.MedianPruner}' --target 0.9   # estimate
    aesweep bench curves WITHOUT_DIR [WITHOUT_DIR ...]   # from which epoch trials rank as they will end

Speed (the default subcommand). Every mode runs in a fresh Python process, so each gets a clean thread
pool, a clean compile state and its own peak resident memory. A mode is a list of Hydra overrides on
the composed project config (`conf/`), so it measures exactly what those config switches do:
  seed-loop      the blog's loop as written: torchvision MNIST + ToTensor, DataLoader(batch_size,
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
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from aesweep.cli import OneLineParser, one_line_errors, positive_int
from aesweep.errors import AesweepError, ConfigError
from aesweep.pruning import checked_pruner, pruner_from_config

REPO = Path(__file__).resolve().parents[2]
CONF_DIR = REPO / "conf"
EPOCH_IMAGES = 60_000  # the seed's epoch: every MNIST training image once
DEVICES = ("auto", "cpu", "cuda")
SEED_LOOP_WORKERS = 4  # DataLoader(num_workers=4), as in the blog
SEED_LOOP_LR, SEED_LOOP_MOMENTUM = 0.01, 0.5
LARGE_BATCHES = (512, 1024)


class BenchError(AesweepError):
    """A bench argument that cannot work (shown as one line)."""


# ----------------------------------------------------------------------------------------------- modes


@dataclass
class Mode:
    """One row of the speed table: which loop, with which overrides on the project config."""

    name: str
    loop: str  # "seed" (the blog's loop) or "project" (aesweep.train.train_one_epoch)
    overrides: list[str] = field(default_factory=list)
    skip: str | None = None  # why this mode is not run on this device
    quick: bool = True  # part of --quick


SPEED_SWITCHES_OFF = ["trainer.compile=false", "trainer.cuda_graph=false", "trainer.cudnn_benchmark=false",
                      "trainer.channels_last=false", "trainer.amp=false", "trainer.matmul_precision=highest",
                      "trainer.conv_kernels=cudnn", "trainer.threads=null"]


def speed_modes(device_type: str, base_batch: int, base_lr: float, cpu_count: int,
                native_bf16: bool = False) -> list[Mode]:
    """Every mode the bench knows for this device, in table order (`native_bf16`: the CPU computes in bf16)."""
    eager = list(SPEED_SWITCHES_OFF)
    on_gpu = device_type == "cuda"
    modes = [
        Mode("seed-loop", "seed"),
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
            Mode("default+tf32", "project", ["trainer.matmul_precision=high"]),
            Mode("default+fused", "project", ["optimizer.fused=true"]),
            Mode("default+cudnn", "project", ["trainer.conv_kernels=cudnn"]),  # the default before aesweep.kernels
            Mode("default+tf32+fused", "project", ["trainer.matmul_precision=high", "optimizer.fused=true"]),
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


# ---------------------------------------------------------------------------------- config and device


def compose_config(overrides: Sequence[str]):
    """The config `python train.py <overrides>` would see (without the hydra node)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def base_overrides(args: argparse.Namespace) -> list[str]:
    overrides = [f"model={args.model}", *args.override, f"device={args.device}", "trainer.progress=false"]
    if args.batch_size is not None:
        overrides.append(f"trainer.batch_size={args.batch_size}")
    return overrides


def checked_config(overrides: Sequence[str]):
    """Compose and validate; a bad override or an absent device is a one-line user error."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from aesweep.config import validate
    from aesweep.train import resolve_device

    try:
        cfg = compose_config(overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise BenchError(" ".join(str(exc).split())) from None
    validate(cfg)
    return cfg, resolve_device(cfg.device)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine_description(device) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{cpu}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
    if device.type == "cuda":
        text += f", {torch.cuda.get_device_name(device)}"
    return text


# ------------------------------------------------------------------------------ measurements (worker)


def step_flops(loss_of_batch: Callable[[], object]) -> int:
    """FLOPs of one forward + backward pass, as torch's FlopCounterMode counts them (matmuls, convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        loss_of_batch().backward()
    return int(counter.get_total_flops())


def matmul_rate(device, dtype_name: str = "float32", repeats: int = 5) -> float:
    """Best-of-`repeats` FLOP/s of a square matrix multiply on `device` with the current thread count."""
    import torch

    n = 1024 if device.type == "cpu" else 8192
    dtype = getattr(torch, dtype_name)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    torch.mm(a, b, out=out)
    best = math.inf
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory in MiB (Linux reports ru_maxrss in KiB; macOS in bytes)."""
    peak = resource.getrusage(who).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _quiet(iterable, desc):
    return iterable


def _subset(splits, start: int, stop: int):
    """The same splits with the training split cut to images [start, stop) (wrapping round if needed)."""
    import torch

    from aesweep.data import MNISTSplits, Split

    train = splits.train
    index = torch.arange(start, stop, device=train.images.device) % len(train)
    return MNISTSplits(train=Split(train.images[index], train.labels[index]), val=splits.val, test=splits.test)


def project_step_flops(cfg, loss_fn, x, device) -> int:
    """FLOPs of one project training step, counted on a fresh eager copy of the model: a speed mode
    changes how the work is done, not how much (and a compiled function would hide it from the counter)."""
    import torch
    from hydra.utils import instantiate

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # leave the run's RNG alone
        model = instantiate(cfg.model).to(device)
    return step_flops(lambda: loss_fn(model, x)[0])


def time_project_loop(cfg, device, warmup: int, steps: int, repeats: int) -> dict:
    """Warm up, then time `aesweep.train.train_one_epoch` over `steps` batches, `repeats` times."""
    import torch

    from aesweep.data import load_splits
    from aesweep.train import build_training, seed_everything, train_one_epoch

    seed_everything(cfg.seed)
    splits = load_splits(cfg.data, device)
    step = build_training(cfg, splits, device)
    batch = cfg.trainer.batch_size

    flops = project_step_flops(cfg, step.loss_fn, splits.train.batch(torch.arange(batch, device=device)), device)
    generator = torch.Generator().manual_seed(cfg.seed)
    warm, timed = _subset(splits, 0, warmup * batch), _subset(splits, warmup * batch, (warmup + steps) * batch)
    started = time.perf_counter()
    train_one_epoch(step, warm, cfg, 0, generator, _quiet)
    _sync(device)
    warmup_s = time.perf_counter() - started
    seconds, losses = [], []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        losses.append(train_one_epoch(step, timed, cfg, 0, generator, _quiet))
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds, "images": steps * batch, "flops_per_step": flops, "warmup_s": warmup_s,
            "mean_loss": losses[0]["loss"]}


def time_seed_loop(cfg, device, warmup: int, steps: int, repeats: int) -> dict:
    """The blog's loop, line for line, on its torchvision DataLoader; times `steps` batches `repeats` times."""
    import torch
    from hydra.utils import instantiate
    from torch import nn
    from torchvision import datasets, transforms

    from aesweep.train import seed_everything

    warnings.filterwarnings("ignore", message=".*worker processes in total.*")  # 4 workers on fewer cores
    seed_everything(cfg.seed)
    transform = transforms.ToTensor()
    dataset = datasets.MNIST(root=str(cfg.data.root), train=True, download=False, transform=transform)
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=cfg.trainer.batch_size, shuffle=True,
                                             num_workers=SEED_LOOP_WORKERS)
    model = instantiate(cfg.model).to(device)
    distance = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=SEED_LOOP_LR, momentum=SEED_LOOP_MOMENTUM)

    x = next(iter(torch.utils.data.DataLoader(dataset, batch_size=cfg.trainer.batch_size)))[0].to(device)
    flops = step_flops(lambda: distance(model(x), x))
    model.zero_grad(set_to_none=True)

    def batches():
        while True:  # a new epoch restarts the workers, as in the blog's `for epoch ...: for data in dataloader`
            yield from dataloader

    data = batches()

    def run_steps(n: int) -> float:
        for _ in range(n):
            img, _ = next(data)
            img = img.to(device)
            output = model(img)
            loss = distance(output, img)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return loss.item()

    started = time.perf_counter()
    run_steps(warmup)
    _sync(device)
    warmup_s = time.perf_counter() - started
    seconds, losses = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        losses.append(run_steps(steps))
        _sync(device)
        seconds.append(time.perf_counter() - start)
    data.close()  # shuts the workers down, so their peak memory shows in RUSAGE_CHILDREN
    del dataloader
    return {"seconds": seconds, "images": steps * cfg.trainer.batch_size, "flops_per_step": flops,
            "warmup_s": warmup_s, "mean_loss": None, "worker_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN)}


def measure(spec: dict) -> dict:
    """One mode, in this process: the worker side of the speed bench. Returns a JSON-able dict."""
    import torch

    cfg, device = checked_config(spec["overrides"])
    bf16 = False
    if spec["loop"] == "project":
        from aesweep.train import amp_enabled, apply_process_settings

        apply_process_settings(cfg.trainer)  # as aesweep.train.run does
        bf16 = amp_enabled(cfg, device)
    timer = time_seed_loop if spec["loop"] == "seed" else time_project_loop
    result = timer(cfg, device, spec["warmup"], spec["steps"], spec["repeats"])
    dtype = "bfloat16" if bf16 else "float32"
    result.update(
        threads=torch.get_num_threads(), batch_size=int(cfg.trainer.batch_size), device=str(device),
        matmul_flops_per_s=matmul_rate(device, dtype), matmul_dtype=dtype, peak_rss_mb=peak_rss_mb(),
        machine=machine_description(device),
    )
    return result


# ------------------------------------------------------------------------------------ speed (parent)


# Imported once by the mode server; each mode's process is a fork of it, so none pays for these imports again.
PRELOAD = ("torch", "torch.utils.flop_counter", "torchvision.datasets", "hydra", "aesweep.data", "aesweep.train")


def serve_modes() -> int:
    """The mode server (`python -m aesweep.bench _serve`): import PRELOAD, then fork one process per mode.

    Reads one JSON spec per line on stdin and answers one JSON result per line on stdout. The server
    itself never runs a torch operation or touches CUDA, so every fork starts as clean as a new process
    (thread pools, CUDA context, compile caches in memory) without paying ~5-10 s of imports again.
    """
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    for line in sys.stdin:
        spec = json.loads(line)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the mode's own process
            os.close(read_end)
            os.dup2(2, 1)  # anything it prints goes to the log, not into the answers on stdout
            try:
                result = measure(spec)
            except Exception as error:  # noqa: BLE001 - any failure becomes the row's note, not a crashed bench
                result = {"error": f"{type(error).__name__}: {' '.join(str(error).split())}"}
            with os.fdopen(write_end, "w") as answer:
                answer.write(json.dumps(result))
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as answer:
            text = answer.read()
        _, status, _ = os.wait4(pid, 0)
        exit_status = os.waitstatus_to_exitcode(status)
        result = json.loads(text) if text else {"error": f"its process ended with status {exit_status}"}
        print(json.dumps(result), flush=True)
    return 0


class ModeRunner:
    """Starts the mode server on first use and sends it one mode at a time; restarts it after a timeout."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.server: subprocess.Popen | None = None

    def run(self, spec: dict, timeout: float) -> dict:
        import select

        if self.server is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a") as log:
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


COLUMNS = ["mode", "loop", "overrides", "device", "threads", "batch_size", "images_per_s", "s_per_epoch", "vs_seed",
           "gflop_per_step", "tflop_per_epoch", "matmul_gflop_per_s", "floor_s_per_epoch", "achieved", "peak_rss_mb",
           "mean_loss", "loss_vs_eager", "warmup_steps", "timed_steps", "note"]


def mode_row(mode: Mode, result: dict, warmup: int, steps: int) -> dict:
    """One table row from a worker's measurements (or the reason there are none)."""
    row = {"mode": mode.name, "loop": "seed (blog)" if mode.loop == "seed" else "project",
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
    """The rows in COLUMNS order, with vs_seed (images/s over the seed loop's) and loss_vs_eager filled in.

    loss_vs_eager compares the mean training loss over the same timed steps with the eager row's, for
    project rows at the eager row's batch size: same seed, same init, same batches, so a mode that keeps
    the math gives a difference at float-rounding level.
    """
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    for column in ("images_per_s", "batch_size", "mean_loss"):
        table[column] = pd.to_numeric(table[column])
    seed = table.loc[table["mode"] == "seed-loop", "images_per_s"].dropna()
    table["vs_seed"] = table["images_per_s"] / seed.iloc[0] if len(seed) else math.nan
    eager = table.loc[(table["mode"] == "eager") & table["mean_loss"].notna()]
    if len(eager):
        same_batch = (table["batch_size"] == eager["batch_size"].iloc[0]) & (table["loop"] == "project")
        reference = eager["mean_loss"].iloc[0]
        table.loc[same_batch, "loss_vs_eager"] = (table.loc[same_batch, "mean_loss"] - reference) / reference
    return table


SIGNIFICANT = {"images_per_s": 4, "s_per_epoch": 3, "vs_seed": 3, "gflop_per_step": 4, "tflop_per_epoch": 4,
               "matmul_gflop_per_s": 3, "floor_s_per_epoch": 3, "achieved": 2, "peak_rss_mb": 4, "mean_loss": 5,
               "loss_vs_eager": 2, "wall_s": 3, "mean_trial_s": 3, "trials_per_hour": 4, "vs_one_at_a_time": 3,
               "mean_val_mapped_acc": 4, "peak_rss_mb_per_trial": 4, "seconds": 3, "speedup_to_target": 3,
               "speedup_at_least": 3, "speedup_at_most": 3, "trial_seconds_total": 4, "trial_seconds_to_target": 4,
               "spearman_to_final": 2, "spearman_min": 2, "spearman_max": 2}


def rounded(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers cut to a few significant digits for reading (the CSV keeps the same, rounded, values)."""
    def round_to(value, digits):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value == 0:
            return value
        return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))

    table = table.copy()
    for column, digits in SIGNIFICANT.items():
        if column in table:
            table[column] = [round_to(v, digits) for v in table[column]]
    return table


def default_out(name: str) -> Path:
    return Path("outputs/bench") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S") / name


def write_table(table: pd.DataFrame, notes: Sequence[str], out: Path, prog: str) -> None:
    """CSV at `out` and markdown (with the notes) beside it, both atomically; the markdown also to stdout."""
    from aesweep.io import write_csv_atomic, write_text_atomic
    from aesweep.results import format_table

    markdown = format_table(table, "md", notes)
    write_csv_atomic(out, table)
    write_text_atomic(out.with_suffix(".md"), markdown)
    sys.stdout.write(markdown)
    print(f"{prog}: wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)


def show_table(table: pd.DataFrame, notes: Sequence[str], out: str | None, prog: str) -> None:
    """Markdown to stdout; with `out`, also written as CSV and markdown (the tables read from sweeps)."""
    if out:
        write_table(table, notes, Path(out), prog)
    else:
        from aesweep.results import format_table

        sys.stdout.write(format_table(table, "md", notes))


def selected_modes(modes: list[Mode], names: list[str] | None, quick: bool, device_type: str) -> list[Mode]:
    if names:
        known = [m.name for m in modes]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError("--modes", ",".join(unknown), f"mode names for {device_type}: {', '.join(known)}")
        return [m for m in modes if m.name in names]
    return [m for m in modes if m.quick] if quick else modes


def speed(args: argparse.Namespace) -> int:
    base = base_overrides(args)
    cfg, device = checked_config(base)
    base_batch = int(cfg.trainer.batch_size)
    from aesweep.train import native_bf16_cpu

    modes = speed_modes(device.type, base_batch, float(cfg.optimizer.lr), os.cpu_count() or 1,
                        native_bf16=device.type == "cpu" and native_bf16_cpu())
    modes = selected_modes(modes, args.modes, args.quick, device.type)
    out = Path(args.out) if args.out else default_out("bench.csv")

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
        "vs_seed = images_per_s / the seed loop's; loss_vs_eager = relative difference of the mean training "
        "loss over the same timed steps (same seed, same batches): a speed mode must not change the math",
        "peak_rss_mb = ru_maxrss of the mode's own process, forked from a server that imported the libraries "
        "(library pages it never touches are not counted; `aesweep bench memory` measures a whole train.py run)",
    ]
    write_table(rounded(speed_table(rows)), notes, out, "aesweep bench")
    return 0


# ------------------------------------------------------------------------------ trials per hour, memory


def trial_command(overrides: Sequence[str], run_dir: Path) -> list[str]:
    return [sys.executable, str(REPO / "train.py"), *overrides, "trainer.save_weights=false",
            f"hydra.run.dir={run_dir}"]


def run_trials_at_once(overrides: Sequence[str], n_trials: int, concurrency: int, folder: Path,
                       threads: int | None, timeout: float) -> dict:
    """Start `n_trials` train.py runs, at most `concurrency` at a time; wall time, outcomes, peak memory."""
    pending = list(range(n_trials))
    running: list[tuple[subprocess.Popen, Path]] = []
    finished: list[Path] = []
    peak_rss = 0.0
    extra = [f"trainer.threads={threads}"] if threads else []
    started = time.perf_counter()
    while pending or running:
        while pending and len(running) < concurrency:
            number = pending.pop(0)
            run_dir = folder / f"trial_{number}"
            command = trial_command([*overrides, *extra, f"seed={number}"], run_dir)
            process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            running.append((process, run_dir))
        time.sleep(0.05)
        for process, run_dir in list(running):
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)  # the trial's own peak memory comes with its exit
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                running.remove((process, run_dir))
                finished.append(run_dir)
                peak_rss = max(peak_rss, usage.ru_maxrss / 2**10)
        if time.perf_counter() - started > timeout:
            for process, _ in running:
                process.kill()
                process.wait()
            raise BenchError(f"--timeout={timeout:g}: {n_trials} trials at concurrency {concurrency} took longer")
    wall = time.perf_counter() - started
    metrics = [json.loads((d / "metrics.json").read_text()) for d in finished if (d / "metrics.json").is_file()]
    completed = [m for m in metrics if m["status"] == "completed"]
    return {"wall_s": wall, "completed": len(completed), "failed": n_trials - len(completed),
            "mean_val_mapped_acc": statistics.fmean(m["val"]["mapped_acc"] for m in completed) if completed
            else math.nan,
            "mean_trial_s": statistics.fmean(m["seconds"] for m in metrics) if metrics else math.nan,
            "peak_rss_mb_per_trial": peak_rss}


def trials(args: argparse.Namespace) -> int:
    base = base_overrides(args) + [f"data.subset={args.subset}", f"trainer.epochs={args.epochs}"]
    _, device = checked_config(base)
    n_trials = args.trials or 2 * max(args.concurrency)
    out = Path(args.out) if args.out else default_out("trials.csv")
    rows = []
    with tempfile.TemporaryDirectory(prefix="aesweep-bench-trials-") as scratch:
        for concurrency in args.concurrency:
            # the cores are shared too (data, scoring, Python): each trial gets its share of them
            threads = max(1, (os.cpu_count() or 1) // concurrency)
            result = run_trials_at_once(base, n_trials, concurrency, Path(scratch) / f"c{concurrency}", threads,
                                        args.timeout)
            rows.append({"concurrency": concurrency, "trials": n_trials, "threads_per_trial": threads, **result,
                         "trials_per_hour": n_trials / result["wall_s"] * 3600})
            print(f"aesweep bench trials: {concurrency} at once: {rows[-1]['trials_per_hour']:.0f} trials/hour",
                  file=sys.stderr)
    table = pd.DataFrame(rows)
    table["vs_one_at_a_time"] = table["trials_per_hour"] / table["trials_per_hour"].iloc[0]
    notes = [f"{machine_description(device)}; device {device.type}",
             f"one trial = python train.py {' '.join(base)} seed=<trial number>",
             f"trials_per_hour = trials / wall seconds from the first start to the last finish x 3600; "
             f"vs_one_at_a_time is relative to concurrency {args.concurrency[0]}; each trial gets "
             "cores // concurrency torch threads; peak_rss_mb_per_trial is the largest single trial's ru_maxrss"]
    write_table(rounded(table), notes, out, "aesweep bench trials")
    return 0


def memory(args: argparse.Namespace) -> int:
    """Peak resident memory of one real `python train.py` run, against the limit."""
    base = base_overrides(args) + [f"trainer.epochs={args.epochs}"]
    if args.subset:
        base.append(f"data.subset={args.subset}")
    _, device = checked_config(base)
    out = Path(args.out) if args.out else default_out("memory.csv")
    with tempfile.TemporaryDirectory(prefix="aesweep-bench-memory-") as scratch:
        result = run_trials_at_once(base, 1, 1, Path(scratch), None, args.timeout)
    table = pd.DataFrame([{"device": device.type, "peak_rss_mb": result["peak_rss_mb_per_trial"],
                           "limit_mb": args.limit_mb, "within_limit": result["peak_rss_mb_per_trial"] <= args.limit_mb,
                           "completed": result["completed"] == 1, "seconds": result["wall_s"]}])
    notes = [f"{machine_description(device)}; device {device.type}",
             f"one run: python train.py {' '.join(base)} seed=0; peak_rss_mb = its ru_maxrss (including shared "
             "library pages, so an upper bound on what it alone needs)"]
    write_table(rounded(table), notes, out, "aesweep bench memory")
    return 0


# -------------------------------------------------------------------------------------- pruning pays


def read_trials(source: Path) -> pd.DataFrame:
    path = source / "trials.csv" if source.is_dir() else source
    if not path.is_file():
        raise BenchError(f"{source}: no trials.csv there; give a sweep directory or its trials.csv")
    return pd.read_csv(path)


def read_sweeps(sources: Sequence[str], metric: str) -> dict[str, pd.DataFrame]:
    """Each sweep's trials.csv by the name it was given, checked for the columns the comparisons read."""
    tables = {source: read_trials(Path(source)) for source in sources}
    for table in tables.values():
        require_columns(table, metric)
    return tables


def time_to_target(trials_table: pd.DataFrame, target: float, metric: str) -> dict:
    """Trial-seconds spent (in trial-number order) until the first COMPLETE trial reached `target`.

    Trial-seconds are the sum of each trial's own `seconds`: the wall time of a sweep that runs one
    trial at a time, the device time of one that runs several at once. (Columns: see `require_columns`.)
    """
    table, spent = in_trial_order(trials_table)
    complete = table["state"] == "COMPLETE"
    reached = complete & (table[metric] >= target)
    first = reached.idxmax() if reached.any() else None
    return {
        "trials": len(table), "complete": int(complete.sum()), "pruned": int((table["state"] == "PRUNED").sum()),
        f"best {metric}": table.loc[complete, metric].max(), "trial_seconds_total": float(spent.iloc[-1]),
        "trial_seconds_to_target": float(spent.loc[first]) if first is not None else math.nan,
        "trials_to_target": int(table.index.get_loc(first)) + 1 if first is not None else math.nan,
    }


def require_columns(trials_table: pd.DataFrame, metric: str) -> None:
    for column in ("number", "state", "seconds", metric):
        if column not in trials_table:
            raise BenchError(f"trials.csv has no column {column!r} (columns: {', '.join(trials_table.columns)})")


def in_trial_order(trials_table: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The trials by number, and the trial-seconds spent once each has finished."""
    table = trials_table.sort_values("number")
    return table, table["seconds"].fillna(0).cumsum()


UNPRUNED_BEST = "unpruned-best"


def unpruned_best(trials_table: pd.DataFrame, metric: str) -> float:
    """The target `unpruned-best`: what trying every trial to the end found, so the speed-up to it is how much
    sooner the pruned sweep found as good a trial (and a bound where it never did)."""
    return trials_table.loc[trials_table["state"] == "COMPLETE", metric].max()


def best_within(trials_table: pd.DataFrame, seconds: float, metric: str) -> float:
    """Best `metric` of the COMPLETE trials that finished within `seconds` of trial time (trial-number order)."""
    table, spent = in_trial_order(trials_table)
    return table.loc[(spent <= seconds) & (table["state"] == "COMPLETE"), metric].max()


def pruning(args: argparse.Namespace) -> int:
    if len(args.sweeps) % 2 and not args.replay:
        raise BenchError(f"give sweep directories in pairs WITH WITHOUT (got {len(args.sweeps)}: "
                         f"{' '.join(args.sweeps)})")
    tables = read_sweeps(args.sweeps, args.metric)
    # (pruner, (source, trials) with it, (source, trials) without it)
    pairs: list[tuple[str, tuple[str, pd.DataFrame], tuple[str, pd.DataFrame]]] = []
    if args.replay:
        histories = {source: trial_histories(Path(source), table, args.metric) for source, table in tables.items()}
        for pruner_cfg in args.replay:
            for source, table in tables.items():
                replayed = replay_pruner(table, histories[source], pruner_cfg, args.metric)
                pairs.append((pruner_label(pruner_cfg), (f"{source} replayed", replayed), (source, table)))
    else:
        pairs = [("as run", (with_pruner, tables[with_pruner]), (without, tables[without]))
                 for with_pruner, without in zip(args.sweeps[::2], args.sweeps[1::2])]
    rows = []
    for pair, (pruner, with_pruner, without) in enumerate(pairs, start=1):
        # the same time for both sweeps; the same cumulative sum as each trial's, so the last trial counts
        pruned_budget = float(in_trial_order(with_pruner[1])[1].iloc[-1])
        for target in args.target:
            value = unpruned_best(without[1], args.metric) if target == UNPRUNED_BEST else target
            reached = [time_to_target(trials, value, args.metric) for _, trials in (with_pruner, without)]
            unpruned_seconds = reached[1]["trial_seconds_to_target"]
            bounds = [speedup_bounds(*reached), {}]
            for label, (source, trials), reach, bound in zip(("with pruner", "without pruner"), (with_pruner, without),
                                                             reached, bounds):
                rows.append({"pair": pair, "pruner": pruner, "target": target, "target_value": value, "sweep": label,
                             "source": source, **reach,
                             "speedup_to_target": unpruned_seconds / reach["trial_seconds_to_target"],
                             **bound, "best_within_pruned_total": best_within(trials, pruned_budget, args.metric)})
    table = pd.DataFrame(rows)
    notes = [f"target: {args.metric} >= the target in a COMPLETE trial ({UNPRUNED_BEST}: the best the unpruned "
             "sweep of the pair found, target_value); trial-seconds = the trials' own seconds "
             "summed in trial-number order (the wall time of a sweep run one trial at a time); "
             "speedup_to_target = the unpruned sweep's trial-seconds to the target / this sweep's (empty: not reached); "
             "speedup_at_least / _at_most (rows with the pruner) bound it where a sweep never reached the target: "
             "one that missed it would have needed more than all its trial-seconds (inf: no upper bound; empty: "
             "neither reached it); "
             "best_within_pruned_total = the best COMPLETE value found within the pruned sweep's total trial-seconds "
             "(the same time budget for both)"]
    if args.replay:
        notes.append(REPLAY_NOTE)
    notes += pruning_summary(table) if len(pairs) > 1 else []
    show_table(rounded(table), notes, args.out, "aesweep bench pruning")
    return 0


def speedup_bounds(with_pruner: dict, without: dict) -> dict:
    """What the pair says about the speed-up to a target, also when one sweep never reached it.

    A sweep that missed the target would have needed more than all its trial-seconds, so the speed-up is
    above (the unpruned sweep missed) or below (the pruned one missed) the ratio to that total. Dropping
    such pairs would drop exactly those where pruning helped or hurt most.
    """
    pruned_to, unpruned_to = with_pruner["trial_seconds_to_target"], without["trial_seconds_to_target"]
    if not (math.isnan(pruned_to) or math.isnan(unpruned_to)):
        return {"speedup_at_least": unpruned_to / pruned_to, "speedup_at_most": unpruned_to / pruned_to}
    if not math.isnan(pruned_to):
        return {"speedup_at_least": without["trial_seconds_total"] / pruned_to, "speedup_at_most": math.inf}
    if not math.isnan(unpruned_to):
        return {"speedup_at_least": 0.0, "speedup_at_most": unpruned_to / with_pruner["trial_seconds_total"]}
    return {"speedup_at_least": math.nan, "speedup_at_most": math.nan}


def describe_bounds(low: float, high: float) -> str:
    if low == high:
        return f"{low:.3g}x"
    if math.isinf(high):
        return f">= {low:.3g}x"
    return f"<= {high:.3g}x" if low == 0 else f"{low:.3g}-{high:.3g}x"


def pruning_summary(table: pd.DataFrame) -> list[str]:
    """One line per target over the pairs (e.g. sampler seeds): the median speed-up, bounded where a sweep missed.

    The median is monotone in every value, so the median of the lower bounds bounds it from below and
    that of the upper bounds from above; pairs where neither sweep reached the target say nothing.
    """
    lines = []
    pruned_rows = table[table["sweep"] == "with pruner"]
    several_pruners = pruned_rows["pruner"].nunique() > 1
    for (pruner, target), rows in pruned_rows.groupby(["pruner", "target"], sort=False):
        known = rows.dropna(subset=["speedup_at_least"])
        if len(known):
            median = describe_bounds(known["speedup_at_least"].median(), known["speedup_at_most"].median())
        else:
            median = "-"
        values = ", ".join(describe_bounds(low, high)
                           for low, high in zip(known["speedup_at_least"], known["speedup_at_most"]))
        with_missed = int(rows["trial_seconds_to_target"].isna().sum())
        without = table[(table["sweep"] == "without pruner") & (table["target"] == target)
                        & (table["pruner"] == pruner)]
        without_missed = int(without["trial_seconds_to_target"].isna().sum())
        name = target if target == UNPRUNED_BEST else f"{target:g}"
        lines.append(f"{pruner + ', ' if several_pruners else ''}target {name}: median speed-up {median} over the "
                     f"{len(known)} of {len(rows)} pairs where a sweep reached it ({values}); not reached: "
                     f"{with_missed} with the pruner, {without_missed} without")
    for pruner, rows in table.groupby("pruner", sort=False):
        totals = rows.drop_duplicates("source").groupby("sweep")["trial_seconds_total"].sum()
        lines.append(f"{pruner + ', ' if several_pruners else ''}trial-seconds of all pairs: "
                     f"{totals.get('with pruner', math.nan):.0f} with the pruner, "
                     f"{totals.get('without pruner', math.nan):.0f} without")
    return lines


REPLAY_NOTE = (
    "replayed: each trial of the unpruned sweep, in trial-number order, reports its recorded learning curve "
    "(history.csv) to the pruner, which sees the trials before it as they would have ended; a pruned trial "
    "costs its history's seconds at that epoch. A real pruned sweep's sampler would have learnt from the "
    "pruned trials and proposed others, so this estimates what the pruner would have cut, it does not "
    "measure a sweep (run one with the pruner to confirm)"
)


def trial_histories(source: Path, trials_table: pd.DataFrame, metric: str) -> dict[int, pd.DataFrame]:
    """Each COMPLETE trial's history.csv (epoch, metric, cumulative seconds), found by its run_dir, or, where
    the sweep folder moved, by the run directory's name inside the folder that holds trials.csv. Only an
    unpruned sweep has whole curves to replay."""
    pruned = int((trials_table["state"] == "PRUNED").sum())
    if pruned:
        raise BenchError(f"{source}: {pruned} trials were pruned; --replay and curves need a sweep run without "
                         "a pruner (hydra.sweeper.pruner=null), whose trials all ran to the end")
    folder = source if source.is_dir() else source.parent
    histories = {}
    for row in trials_table[trials_table["state"] == "COMPLETE"].itertuples():
        recorded = Path(str(getattr(row, "run_dir", "") or row.number))
        path = next((place / "history.csv" for place in (recorded, folder / recorded.name)
                     if (place / "history.csv").is_file()), None)
        if path is None:
            raise BenchError(f"{source}: trial {row.number} has no history.csv (looked in {recorded} and "
                             f"{folder / recorded.name}); the whole learning curves are in the sweep's run directories")
        history = pd.read_csv(path)
        for column in ("epoch", metric, "seconds"):
            if column not in history:
                raise BenchError(f"{path}: no column {column!r} (columns: {', '.join(history.columns)})")
        histories[row.number] = history
    return histories


def replay_pruner(trials_table: pd.DataFrame, histories: dict[int, pd.DataFrame], pruner_cfg: dict,
                  metric: str) -> pd.DataFrame:
    """The unpruned sweep as `pruner_cfg` would have cut it: trials in number order, each COMPLETE one
    reporting its history to the pruner epoch by epoch and asking after each but the last, as
    `aesweep.train.run` does. FAIL and other trials stay as recorded."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # a fixed name: HyperbandPruner picks each trial's bracket from a hash of the study name and trial number
    study = optuna.create_study(study_name="aesweep-replay", direction="maximize",
                                pruner=pruner_from_config(pruner_cfg))
    table, _ = in_trial_order(trials_table)
    table = table.copy()
    for index, row in table.iterrows():
        if row["state"] != "COMPLETE":
            continue
        trial = study.ask()
        history = histories[row["number"]]
        last_epoch = history["epoch"].max()
        for epoch, value, seconds in history[["epoch", metric, "seconds"]].itertuples(index=False):
            if not math.isfinite(value):  # the reporter leaves non-finite values out
                continue
            trial.report(float(value), step=int(epoch))
            if epoch < last_epoch and trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                table.loc[index, ["state", "seconds", metric]] = ["PRUNED", seconds, value]
                break
        else:
            study.tell(trial, row[metric])
    return table


def pruner_label(pruner_cfg: dict) -> str:
    """`MedianPruner(n_warmup_steps=5)` for {_target_: optuna.pruners.MedianPruner, n_warmup_steps: 5}."""
    arguments = ", ".join(f"{key}={value}" for key, value in pruner_cfg.items() if key != "_target_")
    return f"{str(pruner_cfg['_target_']).rsplit('.', 1)[-1]}({arguments})"


def curve_ranking(histories: Sequence[dict[int, pd.DataFrame]], metric: str) -> pd.DataFrame:
    """How early a sweep's trials are ranked as they will end, epoch by epoch, over unpruned sweeps' recorded
    curves: per sweep, the Spearman correlation of its trials' `metric` after that epoch with their final
    values, and where its finally best trial stood among them then. Within a sweep, since a pruner compares
    a trial with the others of its own study. Before the correlation is high a rung ranks noise."""
    from scipy.stats import spearmanr

    # per sweep: each trial's value by epoch, and after its last epoch
    sweeps = [({number: dict(zip(history["epoch"].astype(int), history[metric].astype(float)))
                for number, history in curves.items()},
               {number: float(history[metric].iloc[-1]) for number, history in curves.items()})
              for curves in histories]
    last_epoch = max(max(by_epoch) for values, _ in sweeps for by_epoch in values.values())
    rows = []
    for epoch in range(1, last_epoch + 1):
        correlations, best_ranks, top_thirds, trials = [], [], [], 0
        for values, finals in sweeps:
            at_epoch = {number: by_epoch[epoch] for number, by_epoch in values.items() if epoch in by_epoch}
            if len(at_epoch) < 3:
                continue
            ends = {number: finals[number] for number in at_epoch}
            trials += len(at_epoch)
            correlations.append(spearmanr(list(at_epoch.values()), list(ends.values()), nan_policy="omit").statistic)
            best = max(ends, key=lambda number: ends[number])
            best_ranks.append(1 + sum(value > at_epoch[best] for value in at_epoch.values()))  # 1 = ahead of all
            top_thirds.append(best_ranks[-1] <= max(1.0, len(at_epoch) / 3))
        if correlations:
            spearman = pd.Series(correlations)
            rows.append({"epoch": epoch, "sweeps": len(correlations), "trials": trials,
                         "spearman_to_final": spearman.median(), "spearman_min": spearman.min(),
                         "spearman_max": spearman.max(), "best_trial_rank": pd.Series(best_ranks).median(),
                         "best_in_top_third": sum(top_thirds)})
    return pd.DataFrame(rows)


def curves(args: argparse.Namespace) -> int:
    tables = read_sweeps(args.sweeps, args.metric)
    histories = [trial_histories(Path(source), table, args.metric) for source, table in tables.items()]
    table = curve_ranking(histories, args.metric)
    notes = [f"spearman_to_final: the rank correlation of a sweep's trials' {args.metric} after that epoch with "
             "their values after their last epoch, median over the sweeps (spearman_min, _max: the range); "
             "best_trial_rank: where each sweep's finally best trial stood among its trials after that epoch "
             "(1 = first), median over the sweeps; best_in_top_third: in how many sweeps it was in the top "
             "third then (what a reduction factor of 3 keeps at a rung)"]
    unsettled = table.loc[table["spearman_to_final"] < 0.8, "epoch"]
    settled_from = int(unsettled.max()) + 1 if len(unsettled) else 1
    if settled_from in set(table["epoch"]):
        notes.append(f"the ranking correlates at 0.8 or more from epoch {settled_from} on: a pruner's first rung "
                     "or warm-up before it ranks trials that will still cross")
    show_table(rounded(table), notes, args.out, "aesweep bench curves")
    return 0


# --------------------------------------------------------------------------------------------- CLI


def _targets(text: str) -> list[float | str]:
    parts = text.split(",")
    try:
        return [part if part == UNPRUNED_BEST else float(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or comma-separated numbers "
                                         f"(or {UNPRUNED_BEST})") from None


def _pruner(text: str) -> dict:
    """--replay: a pruner as the sweep files write one, in YAML flow style, built now so a typo fails here."""
    import yaml

    try:
        pruner_cfg = yaml.safe_load(text)
    except yaml.YAMLError:
        pruner_cfg = None
    if not isinstance(pruner_cfg, dict) or "_target_" not in pruner_cfg:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pruner: write it as in a sweep file, e.g. "
                                         "'{_target_: optuna.pruners.MedianPruner, n_warmup_steps: 5}'")
    checked_pruner(pruner_cfg, "--replay")
    return pruner_cfg


def _int_list(text: str) -> list[int]:
    return [positive_int(part) for part in text.split(",")]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="seed", help="model config group option: seed | conv | mlp (default: seed)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="any Hydra override of the project config, repeatable "
                             "(e.g. --override model.bottleneck=16); speed modes then set their own switches")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto (cuda if present) | cpu | cuda")
    parser.add_argument("--batch-size", type=positive_int, help="trainer.batch_size (default: the config's)")
    parser.add_argument("--out", metavar="CSV", help="where to write the table (.csv, with the .md beside it, and "
                                                     "for speed the modes' stderr as .log; default: "
                                                     "outputs/bench/<timestamp>/)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds allowed per speed mode, or per batch of trials (default 600)")


def build_parser() -> dict[str, argparse.ArgumentParser]:
    speed_parser = OneLineParser(prog="aesweep bench", formatter_class=argparse.RawDescriptionHelpFormatter,
                                 description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
                                 epilog="More: `aesweep bench trials|memory|pruning|curves --help`.")
    _add_model_options(speed_parser)
    speed_parser.add_argument("--modes", type=_names, metavar="NAME[,NAME...]",
                              help="only these modes (default: every mode for the device; --quick: the fast ones)")
    speed_parser.add_argument("--warmup", type=positive_int, help="untimed warm-up steps per mode (default 5)")
    speed_parser.add_argument("--steps", type=positive_int,
                              help="timed steps per repeat at the base batch size (default 50; larger batches "
                                   "time the same number of images)")
    speed_parser.add_argument("--repeats", type=positive_int, help="timed repeats per mode; the median counts "
                                                                   "(default 3)")
    speed_parser.add_argument("--quick", action="store_true",
                              help="5 warm-up + 10 timed steps, 1 repeat, no CPU compile: under a minute on 2 cores")

    trials_parser = OneLineParser(prog="aesweep bench trials",
                                  description="Trials per hour: the same small trial (a real `python train.py`) "
                                              "run one at a time and several at once on one device.")
    _add_model_options(trials_parser)
    trials_parser.add_argument("--concurrency", type=_int_list, metavar="N[,N...]",
                               help="trials running at once; the first is the reference (default: 1,4 on a GPU, "
                                    "1,<cores> on a CPU)")
    trials_parser.add_argument("--trials", type=positive_int,
                               help="trials per concurrency setting (default: 2 x the largest concurrency)")
    trials_parser.add_argument("--subset", type=positive_int, help="data.subset of one trial (default 5000)")
    trials_parser.add_argument("--epochs", type=positive_int, help="trainer.epochs of one trial (default 2)")
    trials_parser.add_argument("--quick", action="store_true",
                               help="a tiny trial (512 images, 1 epoch), as many trials as the largest concurrency")

    memory_parser = OneLineParser(prog="aesweep bench memory",
                                  description="Peak resident memory of one real `python train.py` run, against a limit.")
    _add_model_options(memory_parser)
    memory_parser.add_argument("--epochs", type=positive_int, default=1, help="trainer.epochs (default 1)")
    memory_parser.add_argument("--subset", type=positive_int, help="data.subset (default: all 55000 images)")
    memory_parser.add_argument("--limit-mb", type=float, default=1536, help="the target (default 1536 = 1.5 GiB)")

    pruning_parser = OneLineParser(prog="aesweep bench pruning",
                                   description="Time to a target metric: the same sweep with and without the pruner.")
    pruning_parser.add_argument("sweeps", nargs="+", metavar="WITH WITHOUT",
                                help="sweep directories (or their trials.csv) in pairs: the sweep with its pruner, "
                                     "then the same sweep run with hydra.sweeper.pruner=null; more pairs (e.g. "
                                     "other sampler seeds) add rows and a median. With --replay: unpruned sweeps only")
    pruning_parser.add_argument("--replay", type=_pruner, action="append", metavar="PRUNER",
                                help="estimate instead of measure: what this pruner (YAML as in a sweep file, e.g. "
                                     "'{_target_: optuna.pruners.SuccessiveHalvingPruner, min_resource: 3}') would "
                                     "have cut from each unpruned sweep, from its trials' recorded learning curves; "
                                     "repeat to compare pruners in one table")
    pruning_parser.add_argument("--target", type=_targets, required=True,
                                help="the metric value(s) to reach, comma-separated (e.g. 0.8,0.9); "
                                     f"{UNPRUNED_BEST}: the best value the pair's unpruned sweep found")
    pruning_parser.add_argument("--metric", default="val.mapped_acc", help="trials.csv column (default val.mapped_acc)")
    pruning_parser.add_argument("--out", metavar="CSV", help="also write the table there (.csv and .md)")
    curves_parser = OneLineParser(prog="aesweep bench curves",
                                  description="From which epoch on do the trials rank as they will end? Read from "
                                              "unpruned sweeps' learning curves: where a pruner's first rung can go.")
    curves_parser.add_argument("sweeps", nargs="+", metavar="WITHOUT",
                               help="unpruned sweep directories (or their trials.csv) whose run directories hold "
                                    "each trial's history.csv; several (e.g. sampler seeds) pool their trials")
    curves_parser.add_argument("--metric", default="val.mapped_acc", help="history.csv column (default val.mapped_acc)")
    curves_parser.add_argument("--out", metavar="CSV", help="also write the table there (.csv and .md)")
    return {"speed": speed_parser, "trials": trials_parser, "memory": memory_parser, "pruning": pruning_parser,
            "curves": curves_parser}


def _fill_defaults(args: argparse.Namespace, command: str) -> None:
    if command == "speed":
        defaults = {"warmup": 5, "steps": 10, "repeats": 1} if args.quick else {"warmup": 5, "steps": 50, "repeats": 3}
        for key, value in defaults.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    elif command == "trials":
        if args.concurrency is None:
            on_gpu = args.device == "cuda" or (args.device == "auto" and _has_cuda())
            args.concurrency = [1, 4] if on_gpu else sorted({1, os.cpu_count() or 1})
        args.subset = args.subset or (512 if args.quick else 5000)
        args.epochs = args.epochs or (1 if args.quick else 2)
        args.trials = args.trials or (max(args.concurrency) if args.quick else 2 * max(args.concurrency))


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


COMMANDS = {"speed": speed, "trials": trials, "memory": memory, "pruning": pruning, "curves": curves}


def main(argv: Sequence[str] | None = None) -> int:
    """`aesweep bench [speed] ...`, `aesweep bench trials|memory|pruning|curves ...`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["_serve"]:
        return serve_modes()
    command = argv[0] if argv[:1] and argv[0] in COMMANDS else "speed"
    parser = build_parser()[command]

    def run() -> int:
        args = parser.parse_args(argv[1:] if argv[:1] == [command] else argv)
        _fill_defaults(args, command)
        return COMMANDS[command](args)

    return one_line_errors(parser.prog, run)


if __name__ == "__main__":
    sys.exit(main())
