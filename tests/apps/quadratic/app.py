"""A torch-free stand-in for train.py, so sweeper tests run in seconds.

It "trains" for ``epochs`` epochs; the validation score rises towards
1 - (x - target)^2 - 0.1 [kind == b] - 0.05 * momentum, reported after every epoch through
aesweep.trial.TrialReporter exactly as train.py does, and it writes metrics.json and
history.csv into the job folder in train.py's format. ``mode`` makes it misbehave on purpose:
raise (an exception; ``fail_seed`` raises only in the run of that seed), diskfull (the disk fills while the run
record is written), diverge (NaN loss, status diverged), nometrics (writes no metrics.json),
sigkill (the job's process kills itself with SIGKILL in epoch 1, as the OOM killer would); with ``mode_trial``
only the trial of that number misbehaves.
"""

import contextlib
import csv
import errno
import math
import os
import signal
import time
import types
from collections.abc import Iterator
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import aesweep.io
from aesweep import record
from aesweep.trial import TrialReporter


def final_score(cfg: DictConfig) -> float:
    momentum = float(cfg.optimizer.get("momentum", 0.0))
    seed_effect = cfg.seed_noise * ((cfg.seed * 7919) % 13 - 6) / 6  # a fixed, seed-dependent offset in [-1, 1] x noise
    return 1.0 - (cfg.x - cfg.target) ** 2 - (0.1 if cfg.kind == "b" else 0.0) - 0.05 * momentum + seed_effect


@contextlib.contextmanager
def disk_full_while_writing(full: bool) -> Iterator[None]:
    """Within it, the atomic writer's fsync fails as on a full disk (only for aesweep.io, and only here)."""
    if not full:
        yield
        return

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_os = aesweep.io.os
    aesweep.io.os = types.SimpleNamespace(**{**{name: getattr(real_os, name) for name in dir(real_os)
                                                if not name.startswith("__")}, "fsync": no_space})
    try:
        yield
    finally:
        aesweep.io.os = real_os


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    reporter = TrialReporter.from_config(cfg.trial, seed=cfg.seed)
    start = time.time()
    status, reason, value, epochs, history = "completed", None, math.nan, 0, []
    slow = cfg.slow_trial is not None and cfg.trial.trial_number == cfg.slow_trial
    mode = cfg.mode if cfg.mode_trial is None or cfg.trial.trial_number == cfg.mode_trial else "ok"
    for epoch in range(1, cfg.epochs + 1):
        time.sleep(cfg.slow_sleep if slow else cfg.sleep)
        if mode == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "raise" or (cfg.fail_seed is not None and cfg.seed == cfg.fail_seed):
            raise RuntimeError(f"told to raise at epoch {epoch}")
        if mode == "diverge":
            status, reason, value = "diverged", f"loss is nan at epoch {epoch}", math.nan
            break
        value = final_score(cfg) - 0.2 / epoch
        epochs = epoch
        history.append({"epoch": epoch, "val.mapped_acc": value, "seconds": time.time() - start})
        if reporter is not None and reporter.report(epoch, {"val.mapped_acc": value, "val.nmi": value / 2}):
            status = "pruned"
            break
    with open(run_dir / "history.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["epoch", "val.mapped_acc", "seconds"])
        writer.writeheader()
        writer.writerows(history)
    if mode != "nometrics":
        val = {"mapped_acc": value, "nmi": value / 2}
        with disk_full_while_writing(mode == "diskfull"):
            record.write(
                run_dir,
                {
                    "status": status,
                    "reason": reason,
                    "val": val,
                    "test": None if status != "completed" else {"mapped_acc": value - 0.01, "nmi": value / 2},
                    "params": int(cfg.width) * 10,
                    "epochs": epochs,
                    "epochs_planned": int(cfg.epochs),
                    "seconds": time.time() - start,
                    "seed": cfg.seed,
                    "trial": None if reporter is None else {"study_name": cfg.trial.study_name, "number": reporter.number},
                },
            )
    return value


if __name__ == "__main__":
    main()
