"""Offline experiment tracking of a run, chosen by the `logger` config group: none (the default), mlflow, tensorboard.

`train.run` builds a tracker from the config (`start`), gives it each epoch's history row (`log_epoch`) and at
the end the run record and its pictures (`finish`):

mlflow       one MLflow run per run, in a SQLite tracking store under outputs/ (current MLflow refuses plain
             file stores by default). The flattened config as parameters, each epoch's history row as metrics
             `history/<column>` at step = epoch, the record's final numbers under their metric paths
             (`val.mapped_acc`, `test.nmi`, `seconds`), the PNGs as artifacts. A sweep's runs are nested under
             one parent run per study (the run learns its study and trial from `cfg.trial`); a pruned run ends
             KILLED, a diverged one FAILED.
tensorboard  event files in the run folder: each epoch's row as scalars `history/<column>`, and the config as
             hyperparameters with the final numbers as their metrics, so TensorBoard's HParams view compares
             the trials of `tensorboard --logdir outputs/sweeps/<sweep>/<time>`.

Tracking observes a run and never decides it: a tracker that fails logs one warning and the run goes on.
Nothing is imported for `logger=none`. MLflow costs ~1.8 s of CPU once per process (importing it and opening
its store), TensorBoard ~0.1 s; each run's logging adds tens of milliseconds
(outputs/reference/tracking-overhead-cpu/).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from aesweep import record
from aesweep.errors import one_line
from aesweep.storage import local_file, resolved

log = logging.getLogger(__name__)

HISTORY_PREFIX = "history/"  # per-epoch values, apart from the record's final numbers of the same name
# MLflow's end states for the record's statuses: a pruned run was stopped early on purpose.
MLFLOW_STATUS = {"completed": "FINISHED", "pruned": "KILLED", "diverged": "FAILED"}
MLFLOW_PARAMS_PER_CALL = 100  # MLflow's limit for one log_batch
SWEEP_ROLE = "sweep"  # tag aesweep.role of the parent run a study's runs are nested under


class Tracker:
    """`logger=none`: the run folder's own files are the record."""

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        pass

    def finish(self, result: Mapping[str, Any], files: Sequence[Path]) -> None:
        pass


def start(cfg: DictConfig, out_dir: Path) -> Tracker:
    """The tracker `cfg.logger` names, already opening."""
    kind = cfg.logger.name
    if kind == "mlflow":
        return MLflowTracker(cfg, out_dir)
    if kind == "tensorboard":
        return TensorBoardTracker(cfg, out_dir)
    return Tracker()


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """The run's config flattened to `group.key: value` (numbers, strings, booleans; lists as text, null as
    "null"), less the sweep link `trial.*` and the logger itself."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            plain = isinstance(node, (bool, int, float, str))
            flat[prefix[:-1]] = node if plain else "null" if node is None else str(node)

    container = OmegaConf.to_container(cfg, resolve=True)
    walk({k: v for k, v in container.items() if k not in ("trial", "logger")}, "")
    return flat


def final_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The record's finite numbers by metric path: fit/val/test metrics and params, epochs, seconds."""
    numbers = {**record.split_metrics(result, record.SPLITS),
               **{name: result.get(name) for name in record.RUN_NUMBERS}}
    return {name: float(value) for name, value in numbers.items() if _finite(value)}


def epoch_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """A history row's numbers, `history/<column>`, without the epoch (the step they are logged at)."""
    return {HISTORY_PREFIX + name: float(value) for name, value in row.items() if name != "epoch" and _finite(value)}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run_name(cfg: DictConfig, out_dir: Path) -> str:
    """`trial-7` (or `trial-7-seed2`) in a sweep, else the run folder's name."""
    if cfg.trial.trial_number is None:
        return out_dir.name
    seeds = cfg.trial.get("seeds")
    return f"trial-{cfg.trial.trial_number}" + (f"-seed{cfg.seed}" if seeds else "")


class _Tracking(Tracker):
    """Runs each step of a tracker; the first step that fails logs one warning, and the run goes on untracked."""

    kind = ""

    def __init__(self, cfg: DictConfig, out_dir: Path) -> None:
        self.cfg, self.out_dir, self.failed = cfg, out_dir, False
        self._step(self.open)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self._step(self.write_epoch, row)

    def finish(self, result: Mapping[str, Any], files: Sequence[Path]) -> None:
        self._step(self.close, result, files)

    def _step(self, action: Any, *arguments: Any) -> None:
        if self.failed:
            return
        try:
            action(*arguments)
        except Exception as error:  # a store or server away must not cost the run
            self.failed = True
            log.warning("logger=%s: this run is not fully tracked: %s", self.kind, one_line(error))

    def open(self) -> None:
        raise NotImplementedError

    def write_epoch(self, row: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def close(self, result: Mapping[str, Any], files: Sequence[Path]) -> None:
        raise NotImplementedError


class MLflowTracker(_Tracking):
    kind = "mlflow"

    def open(self) -> None:
        # Offline tracking: MLflow would otherwise send usage telemetry from a thread of its own.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow import MlflowClient
        from mlflow.entities import Param

        settings = self.cfg.logger
        uri = resolved(settings.tracking_uri, Path.cwd())
        self.database = local_file(uri) if uri.startswith("sqlite:") else None
        if self.database is not None:
            self.database.parent.mkdir(parents=True, exist_ok=True)
        self.client = client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(settings.experiment)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            artifacts = Path(settings.artifact_location)
            experiment_id = client.create_experiment(
                settings.experiment, artifact_location=(Path.cwd() / artifacts).resolve().as_uri())
        tags = {"aesweep.run_dir": str(self.out_dir), "aesweep.seed": str(self.cfg.seed)}
        self.parent_id = None
        if self.cfg.trial.study_name is not None:
            self.parent_id = self._sweep_run(experiment_id)
            tags.update({"mlflow.parentRunId": self.parent_id, "aesweep.study": self.cfg.trial.study_name,
                         "aesweep.trial": str(self.cfg.trial.trial_number)})
        self.run_id = client.create_run(experiment_id, run_name=run_name(self.cfg, self.out_dir), tags=tags).info.run_id
        params = [Param(key, str(value)) for key, value in hyperparameters(self.cfg).items()]
        for first in range(0, len(params), MLFLOW_PARAMS_PER_CALL):
            client.log_batch(self.run_id, params=params[first:first + MLFLOW_PARAMS_PER_CALL])

    def _sweep_run(self, experiment_id: str) -> str:
        """The parent run of this run's study, made by the first of its runs (under a lock beside the database,
        since runs of one sweep start at once)."""
        study, storage = self.cfg.trial.study_name, str(self.cfg.trial.storage)
        with _file_lock(self.database.with_name(self.database.name + ".lock") if self.database else None):
            found = self.client.search_runs(
                [experiment_id], max_results=1, order_by=["attributes.start_time ASC"],
                filter_string=f"tags.`aesweep.role` = '{SWEEP_ROLE}' AND tags.`aesweep.study` = '{study}' "
                              f"AND tags.`aesweep.storage` = '{storage}'")
            if found:
                return found[0].info.run_id
            tags = {"aesweep.role": SWEEP_ROLE, "aesweep.study": study, "aesweep.storage": storage}
            return self.client.create_run(experiment_id, run_name=study, tags=tags).info.run_id

    def write_epoch(self, row: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(row["epoch"])
        self.client.log_batch(self.run_id, metrics=[Metric(key, value, now, step)
                                                    for key, value in epoch_metrics(row).items()])

    def close(self, result: Mapping[str, Any], files: Sequence[Path]) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(result.get("epochs") or 0)
        self.client.log_batch(self.run_id, metrics=[Metric(key, value, now, step)
                                                    for key, value in final_metrics(result).items()])
        self.client.set_tag(self.run_id, "aesweep.status", str(result.get("status")))
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(str(result.get("status")), "FAILED"))
        if self.parent_id is not None:  # the sweep's run ends with its latest trial
            self.client.set_terminated(self.parent_id, "FINISHED")


class TensorBoardTracker(_Tracking):
    kind = "tensorboard"

    def open(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = self.out_dir / self.cfg.logger.dir
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def write_epoch(self, row: Mapping[str, Any]) -> None:
        for key, value in epoch_metrics(row).items():
            self.writer.add_scalar(key, value, global_step=int(row["epoch"]))

    def close(self, result: Mapping[str, Any], files: Sequence[Path]) -> None:
        # run_name ".": the hyperparameters and their metrics go into this run's own folder, not a sub-run.
        self.writer.add_hparams(hyperparameters(self.cfg), final_metrics(result), run_name=".",
                                global_step=int(result.get("epochs") or 0))
        self.writer.close()


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    """An exclusive lock on a file while inside; none where there is no file or no fcntl (Windows)."""
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # closing the file releases it
        yield
