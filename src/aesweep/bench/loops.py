"""The timed loops of `aesweep bench [speed]`, each mode in its own process forked from a mode server.

The project's rows time the real `aesweep.train.train_one_epoch` on the step `aesweep.train.build_training`
builds; the blog's row runs the blog's loop line for line (torchvision MNIST + ToTensor, DataLoader with 4
workers, MSELoss, SGD(lr=0.01, momentum=0.5)). The mode server imports the libraries once; every mode is a
fork of it, so each gets a clean thread pool, compile state and CUDA context without paying the imports again.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
import warnings
from collections.abc import Callable

from aesweep.bench.common import machine_description

BLOG_LOOP_WORKERS = 4  # DataLoader(num_workers=4), as in the blog
BLOG_LOOP_LR, BLOG_LOOP_MOMENTUM = 0.01, 0.5


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


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

    from aesweep.data import Split, Splits

    train = splits.train
    index = torch.arange(start, stop, device=train.images.device) % len(train)
    return Splits(train=Split(train.images[index], train.labels[index]), val=splits.val, test=splits.test)


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


def time_blog_loop(cfg, device, warmup: int, steps: int, repeats: int) -> dict:
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
                                             num_workers=BLOG_LOOP_WORKERS)
    model = instantiate(cfg.model).to(device)
    distance = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=BLOG_LOOP_LR, momentum=BLOG_LOOP_MOMENTUM)

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
    return {"seconds": seconds, "images": steps * cfg.trainer.batch_size, "flops_per_step": flops,
            "warmup_s": warmup_s, "mean_loss": None, "worker_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN)}


def measure(spec: dict) -> dict:
    """One mode, in this process: the worker side of the speed bench. Returns a JSON-able dict."""
    import torch

    from aesweep.train import checked_config

    cfg, device = checked_config(spec["overrides"])
    bf16 = False
    if spec["loop"] == "project":
        from aesweep.step import amp_enabled
        from aesweep.train import apply_process_settings

        apply_process_settings(cfg.trainer)  # as aesweep.train.run does
        bf16 = amp_enabled(cfg, device)
    timer = time_blog_loop if spec["loop"] == "blog" else time_project_loop
    result = timer(cfg, device, spec["warmup"], spec["steps"], spec["repeats"])
    dtype = "bfloat16" if bf16 else "float32"
    result.update(
        threads=torch.get_num_threads(), batch_size=int(cfg.trainer.batch_size), device=str(device),
        matmul_flops_per_s=matmul_rate(device, dtype), matmul_dtype=dtype, peak_rss_mb=peak_rss_mb(),
        machine=machine_description(device),
    )
    return result


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
