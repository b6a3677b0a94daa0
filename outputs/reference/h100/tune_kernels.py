"""Time aesweep.kernels' launches for the seed model's convolutions, tile size by tile size.

    python3 outputs/reference/h100/tune_kernels.py [--batch 128] [--calls 20] [--replays 20] [--json TILES]

Every launch the seed model's training step makes (four convolutions, three data gradients, four
weight gradients, the bias-only sum of the transposed convolutions) is captured `--calls` times in one
CUDA graph, which is replayed `--replays` times: us per launch as it runs inside the whole-step graph,
not the Python launch cost. Prints one line per (launch, tile configuration), then the fastest
configuration per launch and the total of the current defaults against the total of the fastest;
`--json` writes the fastest as {tile_key: tiles}, which `profile_step.py --tiles` loads.
Without a GPU (a dry run) every launch runs once in Triton's interpreter at batch 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from aesweep import kernels as K  # noqa: E402

CONV_CONFIGS = [  # (block_rows, block_taps, num_warps); the first is the default
    tuple(K.CONVOLVE_TILES.values()), (64, 32, 4), (128, 16, 4), (128, 64, 4), (256, 32, 8), (64, 16, 2),
]
WGRAD_CONFIGS = [  # (block_rows, block_taps, num_warps, rows_per_program[, num_stages, unroll, partials])
    tuple(K.CORRELATE_TILES.values()),
    (64, 32, 4, 256), (128, 64, 4, 1024), (128, 32, 4, 256),  # session 7's fastest (run3-tune.txt)
    # session 7 left the weight gradients 3-4x slower than the convolutions over the same data; unlike
    # those (unrolled), their row loop is software-pipelined, which gathered loads may not repay
    (64, 32, 4, 256, 1), (128, 64, 4, 1024, 1), (32, 32, 4, 128, 1),
    # its fastest were its smallest (64 rows a block, 256 a program): the trend, continued - fewer rows per
    # program (more programs, shorter serial loops, more atomic adds), two warps, wider taps
    (64, 32, 4, 128), (64, 32, 4, 64), (32, 32, 4, 64), (32, 32, 2, 64), (64, 32, 2, 128), (64, 64, 4, 256),
    (32, 64, 4, 128),
    (64, 128, 4, 256), (32, 256, 8, 128),  # every tap in one tile: each gradient block loaded once, not per tile
    # the row loop unrolled (the convolutions' loops are: every load can be issued up front)
    (64, 32, 4, 256, 3, 4), (64, 32, 4, 256, 1, 4), (128, 64, 4, 1024, 3, 8), (64, 32, 4, 128, 1, 2),
    # no atomic adds (nor the zeroing launches before them): per-program sums, then one torch.sum
    (64, 32, 4, 256, 3, None, True), (64, 32, 4, 128, 3, None, True), (32, 32, 4, 64, 3, None, True),
    (128, 64, 4, 1024, 3, None, True), (64, 32, 4, 256, 1, 4, True), (32, 32, 4, 128, 1, 4, True),
]
# the seed model's convolutions: (name, transposed, in channels, out channels, input size)
LAYERS = [("conv1", False, 1, 4, 28), ("conv2", False, 4, 8, 24), ("deconv1", True, 10, 10, 20),
          ("deconv2", True, 10, 1, 24)]


def launches(batch: int, device: torch.device):
    """(name, kind, tile_key, function of tiles) for every launch of one training step's convolutions."""
    out = []
    for name, transposed, c_in, c_out, size in LAYERS:
        k = 5
        x = torch.randn(batch, c_in, size, size, device=device)
        w = torch.randn(*((c_in, c_out) if transposed else (c_out, c_in)), k, k, device=device)
        b = torch.randn(c_out, device=device)
        o_size = size + k - 1 if transposed else size - k + 1
        g = torch.randn(batch, c_out, o_size, o_size, device=device)
        if transposed:
            out.append((f"{name}.forward", "conv", K.tile_key("convolve", c_in, c_out, k, k - 1),
                        lambda t, x=x, w=w, b=b: K.conv_transpose2d(x, w, b, t)))
            out.append((f"{name}.dgrad", "conv", K.tile_key("convolve", c_out, c_in, k, 0),
                        lambda t, g=g, w=w: K.conv2d(g, w, None, t)))
            out.append((f"{name}.wgrad", "wgrad", K.tile_key("correlate", c_out, c_in, k),
                        lambda t, g=g, x=x: K.correlate(x, g, k, False, t)))
            out.append((f"{name}.bgrad", "wgrad", K.tile_key("correlate", 0, c_out, k),
                        lambda t, g=g: K.correlate(g, None, k, True, t)))
        else:
            out.append((f"{name}.forward", "conv", K.tile_key("convolve", c_in, c_out, k, 0),
                        lambda t, x=x, w=w, b=b: K.conv2d(x, w, b, t)))
            if c_in > 1:  # the first layer's input is the data: no gradient
                out.append((f"{name}.dgrad", "conv", K.tile_key("convolve", c_out, c_in, k, k - 1),
                            lambda t, g=g, w=w: K.conv_transpose2d(g, w, None, t)))
            out.append((f"{name}.wgrad+bgrad", "wgrad", K.tile_key("correlate", c_in, c_out, k),
                        lambda t, g=g, x=x: K.correlate(g, x, k, True, t)))
    return out


def config_kwargs(kind: str, config: tuple) -> dict:
    if kind == "conv":
        return dict(zip(("block_rows", "block_taps", "num_warps"), config))
    return dict(zip(("block_rows", "block_taps", "num_warps", "rows_per_program", "num_stages", "unroll", "partials"),
                    config))


def time_in_graph(fn, calls: int, replays: int) -> float:
    """us per call of `fn`, captured `calls` times in one CUDA graph and replayed."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # compile and warm up outside the capture
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1000 / (calls * replays)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--replays", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the fastest tiles per launch here")
    parser.add_argument("--only", default="", help="comma-separated parts of launch names, e.g. wgrad,bgrad")
    args = parser.parse_args(argv)
    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda" if on_gpu else "cpu")
    batch = args.batch if on_gpu else 2
    default_total = best_total = 0.0
    best, tuned = {}, {}
    for name, kind, key, launch in launches(batch, device):
        if args.only and not any(part in name for part in args.only.split(",")):
            continue
        configs = CONV_CONFIGS if kind == "conv" else WGRAD_CONFIGS
        times = {}
        for config in configs if on_gpu else configs[:1]:
            cfg = config_kwargs(kind, config)
            try:
                times[config] = time_in_graph(lambda: launch(cfg), args.calls, args.replays) if on_gpu else (
                    launch(cfg), 0.0)[1]
            except Exception as exc:  # a tile that does not fit (shared memory, registers) is just skipped
                print(f"{name:22s} {config}: failed: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            print(f"{name:22s} {config}: {times[config]:7.2f} us")
        if not times:
            continue
        best[name] = min(times, key=times.get)
        tuned[key] = config_kwargs(kind, best[name])
        default_total += times.get(configs[0], float("nan"))
        best_total += times[best[name]]
        sys.stdout.flush()
    print("\nfastest per launch:")
    for name, config in best.items():
        print(f"  {name:22s} {config}")
    print(f"all launches of one step: defaults {default_total:.1f} us, fastest each {best_total:.1f} us "
          f"(batch {batch}, {torch.cuda.get_device_name() if on_gpu else 'cpu interpreter'})")
    if args.json:
        args.json.write_text(json.dumps(tuned, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
