"""What every bench subcommand shares: the composed project config, the machine line, the tables."""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from aesweep.errors import AesweepError

DEVICES = ("auto", "cpu", "cuda")


class BenchError(AesweepError):
    """A bench argument that cannot work (shown as one line)."""


def base_overrides(args: argparse.Namespace) -> list[str]:
    overrides = [f"model={args.model}", *args.override, f"device={args.device}", "trainer.progress=false"]
    if args.batch_size is not None:
        overrides.append(f"trainer.batch_size={args.batch_size}")
    return overrides


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


SIGNIFICANT = {"images_per_s": 4, "s_per_epoch": 3, "vs_blog": 3, "gflop_per_step": 4, "tflop_per_epoch": 4,
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


def checked_out(out: str | None, name: str) -> Path:
    """Where a measuring subcommand writes its table (`--out`, else `default_out(name)`), checked before it
    measures: a place that cannot be written fails in one line now, not after minutes of measuring."""
    from aesweep.io import check_writable

    path = Path(out) if out else default_out(name)
    check_writable(path)
    return path


def write_table(table: pd.DataFrame, notes: Sequence[str], out: Path, prog: str) -> None:
    """CSV at `out` and markdown (with the notes) beside it, both atomically; the markdown also to stdout."""
    from aesweep.io import write_csv_atomic, write_text_atomic, writing_to
    from aesweep.results.table import format_table

    markdown = format_table(table, "md", notes)
    with writing_to(out):
        write_csv_atomic(out, table)
        write_text_atomic(out.with_suffix(".md"), markdown)
    sys.stdout.write(markdown)
    print(f"{prog}: wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)


def show_table(table: pd.DataFrame, notes: Sequence[str], out: str | None, prog: str) -> None:
    """Markdown to stdout; with `out`, also written as CSV and markdown (the tables read from sweeps)."""
    if out:
        write_table(table, notes, Path(out), prog)
    else:
        from aesweep.results.table import format_table

        sys.stdout.write(format_table(table, "md", notes))
