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
Nothing is imported for `logger=none`. MLflow's client lives in a helper process, so that importing it and
opening its store (~1.8 s of CPU, once per training process) overlap the training; TensorBoard costs ~0.1 s;
each run's logging adds tens of milliseconds (outputs/reference/tracking-overhead-cpu/).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from omegaconf import DictConfig, OmegaConf

from aesweep import record
from aesweep.errors import AesweepError, one_line
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
    """Sends each step to this process's MLflow helper (`MLflowHelper`), which writes it; `finish` waits for it.

    The helper is a process of its own so that importing MLflow and opening its store (~1.8 s of CPU, paid once
    per helper) run on another core beside the first run's training rather than before it; a thread would
    share the training's interpreter lock.
    """

    kind = "mlflow"

    def open(self) -> None:
        settings = self.cfg.logger
        uri = resolved(settings.tracking_uri, Path.cwd())
        database = local_file(uri) if uri.startswith("sqlite:") else None
        if database is not None:  # a store that cannot be made is reported now, not when the run ends
            database.parent.mkdir(parents=True, exist_ok=True)
        tags = {"aesweep.run_dir": str(self.out_dir), "aesweep.seed": str(self.cfg.seed)}
        sweep = None
        if self.cfg.trial.study_name is not None:
            sweep = {"aesweep.role": SWEEP_ROLE, "aesweep.study": self.cfg.trial.study_name,
                     "aesweep.storage": str(self.cfg.trial.storage)}
            tags.update({"aesweep.study": self.cfg.trial.study_name, "aesweep.trial": str(self.cfg.trial.trial_number)})
        self.helper = MLflowHelper.shared()
        self.helper.send("open", {
            "uri": uri, "database": str(database) if database else None, "experiment": settings.experiment,
            "artifact_location": (Path.cwd() / Path(settings.artifact_location)).resolve().as_uri(),
            "run_name": run_name(self.cfg, self.out_dir), "tags": tags, "sweep": sweep,
            "params": {key: str(value) for key, value in hyperparameters(self.cfg).items()}})

    def write_epoch(self, row: Mapping[str, Any]) -> None:
        self.helper.send("epoch", int(row["epoch"]), epoch_metrics(row))

    def close(self, result: Mapping[str, Any], files: Sequence[Path]) -> None:
        status = str(result.get("status"))
        self.helper.send("close", int(result.get("epochs") or 0), final_metrics(result), status,
                         [str(path) for path in files])
        self.helper.wait_for_close()


class MLflowHelper:
    """A `python -m aesweep.tracking` process fed (command, arguments) tuples over its stdin; one per training
    process, kept for the next run, and gone with the process (its stdin closes)."""

    _shared: MLflowHelper | None = None

    def __init__(self) -> None:
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}  # offline: no usage reports from a thread of its own
        self.process = subprocess.Popen([sys.executable, "-m", "aesweep.tracking"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env)
        atexit.register(self.stop)

    def stop(self) -> None:
        """Ends the helper (it has written every closed run) and reaps it."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        self.process.wait()

    @classmethod
    def shared(cls) -> MLflowHelper:
        if cls._shared is None or cls._shared.process.poll() is not None:
            cls._shared = cls()
        return cls._shared

    def send(self, command: str, *arguments: Any) -> None:
        pickle.dump((command, *arguments), self.process.stdin)
        self.process.stdin.flush()

    def wait_for_close(self) -> None:
        """Returns once the run is written; raises with the helper's reason where a step of it failed."""
        try:
            error = pickle.load(self.process.stdout)
        except EOFError:
            raise AesweepError(f"the MLflow helper process ended (exit status {self.process.wait()})") from None
        if error is not None:
            raise AesweepError(error)


class MLflowWriter:
    """The helper's side: one MLflow run at a time, through MlflowClient."""

    def open(self, run: Mapping[str, Any]) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        self.client = client = MlflowClient(tracking_uri=run["uri"])
        experiment = client.get_experiment_by_name(run["experiment"])
        experiment_id = (experiment.experiment_id if experiment is not None else
                         client.create_experiment(run["experiment"], artifact_location=run["artifact_location"]))
        tags = dict(run["tags"])
        self.parent_id = None
        if run["sweep"] is not None:
            database = Path(run["database"]) if run["database"] else None
            self.parent_id = self._sweep_run(experiment_id, run["sweep"], database)
            tags["mlflow.parentRunId"] = self.parent_id
        self.run_id = client.create_run(experiment_id, run_name=run["run_name"], tags=tags).info.run_id
        params = [Param(key, value) for key, value in run["params"].items()]
        for first in range(0, len(params), MLFLOW_PARAMS_PER_CALL):
            client.log_batch(self.run_id, params=params[first:first + MLFLOW_PARAMS_PER_CALL])

    def _sweep_run(self, experiment_id: str, sweep: Mapping[str, str], database: Path | None) -> str:
        """The parent run of this run's study, made by the first of its runs (under a lock beside the database,
        since runs of one sweep start at once)."""
        with _file_lock(database.with_name(database.name + ".lock") if database else None):
            found = self.client.search_runs(
                [experiment_id], max_results=1, order_by=["attributes.start_time ASC"],
                filter_string=" AND ".join(f"tags.`{key}` = '{value}'" for key, value in sweep.items()))
            if found:
                return found[0].info.run_id
            return self.client.create_run(experiment_id, run_name=sweep["aesweep.study"], tags=dict(sweep)).info.run_id

    def epoch(self, step: int, metrics: Mapping[str, float]) -> None:
        self._log_metrics(step, metrics)

    def close(self, step: int, metrics: Mapping[str, float], status: str, files: Sequence[str]) -> None:
        self._log_metrics(step, metrics)
        self.client.set_tag(self.run_id, "aesweep.status", status)
        for path in files:
            self.client.log_artifact(self.run_id, path)
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(status, "FAILED"))
        if self.parent_id is not None:  # the sweep's run ends with its latest trial
            self.client.set_terminated(self.parent_id, "FINISHED")

    def _log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, value, now, step) for key, value in metrics.items()])


def serve_mlflow(requests: BinaryIO, replies: BinaryIO) -> None:
    """The helper's loop: a run's steps in order; its first failure skips the rest of that run and is the
    reply to its `close` (None when every step went through)."""
    writer, error = MLflowWriter(), None
    while True:
        try:
            command, *arguments = pickle.load(requests)
        except EOFError:  # the training process is gone
            return
        if command == "open":
            error = None
        if error is None:
            try:
                getattr(writer, command)(*arguments)
            except Exception as failure:  # reported to the run, which goes on untracked
                error = one_line(failure)
        if command == "close":
            pickle.dump(error, replies)
            replies.flush()


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


if __name__ == "__main__":  # the MLflow helper process (MLflowHelper)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what MLflow prints must not enter the replies
    serve_mlflow(sys.stdin.buffer, replies)
