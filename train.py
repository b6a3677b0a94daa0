"""Train one MNIST autoencoder and score its bottleneck as a digit clustering.

    python train.py                                   # the blog's recipe
    python train.py model=conv loss=iic optimizer=adam device=cpu
    python train.py -m sweep=default                  # an Optuna search from sweeps/default.yaml

Returns val.mapped_acc (NaN when the run diverged) so that Hydra sweepers can optimise it.
"""

import contextlib
import logging
import math
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from aesweep.overrides import check_command_line
from aesweep.errors import AesweepError, ConfigError


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    # Imported here, after Hydra has composed and the sweeper has started: torch, scikit-learn and SciPy take ~4 s
    # to import, a refused command line needs none of them, and a sweep's MLflow writer starts meanwhile on the
    # other core (aesweep.tracking.prepare).
    from aesweep.train import run

    try:
        with _console_lines_labelled(f"[{hydra_cfg.sweep.subdir}]" if multirun else None):
            result = run(cfg, out_dir, multirun=multirun)
    except AesweepError as exc:
        if multirun and cfg.trial.study_name is not None:
            raise  # the aesweep sweeper records the trial as failed with this reason and goes on
        # A user mistake: one line, no traceback, and no half-made run directory left behind.
        _remove_run_files(out_dir, hydra_cfg, multirun)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    val = result["val"]
    return val["mapped_acc"] if val else math.nan


class _Labelled(logging.Formatter):
    """A console line of one run of a sweep: its label, then the line as the job's own formatter writes it."""

    def __init__(self, inner: logging.Formatter | None, label: str) -> None:
        super().__init__()
        self.inner, self.label = inner or logging.Formatter(), label

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.label} {self.inner.format(record)}"


@contextlib.contextmanager
def _console_lines_labelled(label: str | None) -> Iterator[None]:
    """Start each of this run's console log lines with ``label`` (its folder under the sweep's, as the sweeper's
    slot lines name it): a sweep's runs in joblib workers log side by side on one terminal. The run's own
    train.log is left as it is. None: nothing changes."""
    consoles = [handler for handler in logging.getLogger().handlers
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)]
    formatters = [handler.formatter for handler in consoles] if label else []
    for handler, formatter in zip(consoles, formatters):
        handler.setFormatter(_Labelled(formatter, label))
    try:
        yield
    finally:
        for handler, formatter in zip(consoles, formatters):
            handler.setFormatter(formatter)


def _remove_run_files(out_dir: Path, hydra_cfg, multirun: bool) -> None:
    """Undo what this refused run wrote (Hydra's .hydra/ and job log); the directory only if that empties it."""
    if hydra_cfg.output_subdir:
        shutil.rmtree(out_dir / hydra_cfg.output_subdir, ignore_errors=True)
    (out_dir / f"{hydra_cfg.job.name}.log").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        out_dir.rmdir()  # refuses, keeping everything, when the user's own files are in it
        if multirun and [path.name for path in out_dir.parent.iterdir()] == ["multirun.yaml"]:
            (out_dir.parent / "multirun.yaml").unlink()  # a plain multirun refused at its first job
        out_dir.parent.rmdir()  # the date folder of outputs/runs/<date>/<time>, or the multirun's folder


if __name__ == "__main__":
    try:
        check_command_line(sys.argv[1:], Path(__file__).resolve().parent / "conf")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    main()
