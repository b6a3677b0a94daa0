"""Offline experiment tracking of a run, chosen by the `logger` config group: none (the default), mlflow, tensorboard.

`train.run` builds a tracker from the config (`start`), gives it each epoch's history row (`log_epoch`) and at
the end the run record and its pictures (`finish`):

mlflow       one MLflow run per run, in a SQLite tracking store under outputs/ (current MLflow refuses plain
             file stores by default). The flattened config as parameters, each epoch's history row as metrics
             `history/<column>` at step = epoch, the record's final numbers under their metric paths
             (`val.mapped_acc`, `test.nmi`, `seconds`), the PNGs as artifacts. A sweep's runs are nested under
             one parent run per study (the run learns its study and trial from `cfg.trial`); a pruned run ends
             KILLED, a diverged one FAILED, one whose process died FAILED. A writer process beside the run
             makes the MLflow calls (`WriterProcess`), so the run never imports mlflow.
tensorboard  event files in the run folder: each epoch's row as scalars `history/<column>`, and the config as
             hyperparameters with the final numbers as their metrics, so TensorBoard's HParams view compares
             the trials of `tensorboard --logdir outputs/sweeps/<sweep>/<time>`.

Tracking observes a run and never decides it: a tracker that fails logs one warning and the run goes on.
Nothing is imported for `logger=none`. TensorBoard costs ~0.1 s of CPU once per process; MLflow ~3 s (importing
it and opening its store) and ~0.05 s a run, all of it in the writer process, which a sweep starts as its sweeper
is set up (`prepare`), so that those 3 s run beside the sweep's own planning on the other core, before training
(outputs/reference/tracking-overhead-cpu/).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
WRITER_NICENESS = 19  # the MLflow writer yields the CPU to training: it runs where training leaves a core idle
WRITER_EXIT_SECONDS = 60.0  # how long a process that ends waits for its MLflow writer (a server away retries)


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
    """Hands each step of the run to this process's MLflow writer (`WriterProcess`) and goes on at once."""

    kind = "mlflow"

    def open(self) -> None:
        settings, cwd = self.cfg.logger, Path.cwd()
        self.key = uuid.uuid4().hex
        tags = {"aesweep.run_dir": str(self.out_dir), "aesweep.seed": str(self.cfg.seed)}
        sweep = None
        if self.cfg.trial.study_name is not None:
            sweep = {"study": self.cfg.trial.study_name, "storage": str(self.cfg.trial.storage)}
            tags.update({"aesweep.study": sweep["study"], "aesweep.trial": str(self.cfg.trial.trial_number)})
        writer().send({"run": self.key, "open": {
            "uri": resolved(settings.tracking_uri, cwd), "experiment": settings.experiment,
            "artifact_location": (cwd / settings.artifact_location).resolve().as_uri(),
            "run_name": run_name(self.cfg, self.out_dir), "tags": tags, "sweep": sweep,
            "params": {key: str(value) for key, value in hyperparameters(self.cfg).items()}}})

    def write_epoch(self, row: Mapping[str, Any]) -> None:
        writer().send({"run": self.key, "step": int(row["epoch"]), "metrics": epoch_metrics(row)})

    def close(self, result: Mapping[str, Any], files: Sequence[Path]) -> None:
        writer().send({"run": self.key, "step": int(result.get("epochs") or 0), "metrics": final_metrics(result),
                       "finish": {"status": str(result.get("status")), "files": [str(path) for path in files]}})


class WriterProcess:
    """The process that does a process's MLflow work, fed JSON lines through a pipe.

    Importing mlflow and opening its store cost ~3 s of CPU, each run's calls ~0.05 s
    (outputs/reference/tracking-overhead-cpu/); done here they would hold up the training loop. The writer
    runs beside it at the lowest priority, in a session of its own (Ctrl-C on the sweep does not cut a record
    short), and this process waits for it only when it exits, so a sweep ends with every run tracked; the writer
    then ends without the interpreter's teardown. Runs the writer never saw finish (their process killed) end
    FAILED when the pipe closes. A writer that was only importing mlflow (a sweep refused before its first run)
    is stopped, not waited for.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.process = subprocess.Popen([sys.executable, "-m", "aesweep.tracking"], stdin=subprocess.PIPE, text=True,
                                        start_new_session=True)
        self.writes = False  # sent a run, or a store to open (which may be making its tables)
        atexit.register(self.close)

    def send(self, message: Mapping[str, Any]) -> None:
        self.writes = self.writes or "run" in message or message.get("prepare", {}).get("open", False)
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def close(self, timeout: float = WRITER_EXIT_SECONDS) -> None:
        """Close the pipe and wait for the writer to finish what it was sent; stop one that writes nothing."""
        if self.process.stdin.closed:
            return
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        if not self.writes:
            self.process.kill()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("logger=mlflow: still writing after %.0f s; it finishes in the background (pid %d)",
                        timeout, self.process.pid)


_writer: WriterProcess | None = None


def writer() -> WriterProcess:
    """This process's MLflow writer, started by its first MLflow run (a forked child starts its own)."""
    global _writer
    if _writer is None or _writer.pid != os.getpid() or _writer.process.poll() is not None:
        _writer = WriterProcess()
    return _writer


def prepare(cfg: DictConfig, open_store: bool) -> None:
    """With logger=mlflow, start this process's writer now and have it import mlflow and its SQL store's code
    (and, with open_store, open the store) before the first run needs them, so that those ~3 s of CPU overlap
    what comes before training (planning the sweep, loading the data) instead of competing with it
    (outputs/reference/tracking-overhead-cpu/). A sweep starts the imports as its sweeper is set up and opens the
    store once its settings are checked (~0.05 s then); a run only imports, so that a sweep or run refused later
    (a bad setting, an absent device or data) leaves no store behind."""
    if OmegaConf.select(cfg, "logger.name") == "mlflow":  # the sweeper also sweeps apps with no logger group
        writer().send({"prepare": {"uri": resolved(cfg.logger.tracking_uri, Path.cwd()), "open": open_store}})


def stop_writer() -> None:
    """Wait for this process's MLflow writer to finish what it was sent, and end it (a next run starts another)."""
    global _writer
    if _writer is not None and _writer.pid == os.getpid():
        _writer.close()
    _writer = None


class MLflowWriter:
    """The writer process's side: each message's MLflow calls; a run whose call fails warns once and is
    dropped, the others go on. Each store's client, experiment and study parent run are looked up once per
    process: a run then costs its own calls only (~0.05 s of CPU, outputs/reference/tracking-overhead-cpu/)."""

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}
        self.experiments: dict[tuple[str, str], str] = {}
        self.parents: dict[tuple[str, str, str, str], str] = {}  # (uri, experiment id, study, storage): run id
        self.runs: dict[str, dict[str, Any]] = {}

    def handle(self, message: Mapping[str, Any]) -> None:
        if "prepare" in message:
            # Preparing is an optimisation: a store that cannot be opened now is reported by the runs that
            # use it, each once, as it would be without it.
            with contextlib.suppress(Exception):
                import mlflow  # noqa: F401 - the import alone is half of the writer's start-up
                from mlflow.store.db.db_types import DATABASE_ENGINES

                uri = message["prepare"]["uri"]
                if message["prepare"]["open"]:
                    self.client(uri)
                elif urllib.parse.urlparse(uri).scheme.split("+")[0] in DATABASE_ENGINES:
                    # Opening a SQL store is mostly importing its module (SQLAlchemy, alembic, MLflow's table
                    # models: ~0.7 s): done now, nothing opened, so that opening later takes ~0.05 s.
                    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
            return
        key = message["run"]
        if "open" in message:
            self.runs[key] = {"name": message["open"]["run_name"], "id": None}
        run = self.runs.get(key)
        if run is None or run.get("failed"):
            return
        try:
            if "open" in message:
                self.open(run, message["open"])
            if "finish" in message:
                self.finish(run, message["metrics"], message["step"], **message["finish"])
                del self.runs[key]
            elif "metrics" in message:
                self.log_metrics(run, message["metrics"], message["step"])
        except Exception as error:  # a store or server away must not cost the other runs
            run["failed"] = True
            log.warning("logger=mlflow: run %s is not fully tracked: %s", run["name"], one_line(error))

    def client(self, uri: str) -> Any:
        """The client of a tracking store, which opens the store (and on a new one makes MLflow's tables) once."""
        if uri not in self.clients:
            from mlflow import MlflowClient

            database = local_file(uri) if uri.startswith("sqlite:") else None
            if database is not None:
                database.parent.mkdir(parents=True, exist_ok=True)
            with _store_lock(uri):
                self.clients[uri] = MlflowClient(tracking_uri=uri)
        return self.clients[uri]

    def open(self, run: dict[str, Any], spec: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        run["client"] = client = self.client(spec["uri"])
        experiment_id = self.experiment(client, spec["uri"], spec["experiment"], spec["artifact_location"])
        run["parent"] = None if spec["sweep"] is None else self.sweep_run(client, spec["uri"], experiment_id,
                                                                           **spec["sweep"])
        tags = dict(spec["tags"])
        if run["parent"] is not None:
            tags["mlflow.parentRunId"] = run["parent"]
        run["id"] = client.create_run(experiment_id, run_name=spec["run_name"], tags=tags).info.run_id
        params = [Param(key, value) for key, value in spec["params"].items()]
        for first in range(0, len(params), MLFLOW_PARAMS_PER_CALL):
            client.log_batch(run["id"], params=params[first:first + MLFLOW_PARAMS_PER_CALL])

    # The experiment and the study's parent run are made by the first run that needs them, under the store's lock
    # (other workers' writers may be making them at the same moment), and remembered for the process's next runs.

    def experiment(self, client: Any, uri: str, name: str, artifact_location: str) -> str:
        """The id of the experiment runs go into."""
        if (uri, name) not in self.experiments:
            with _store_lock(uri):
                found = client.get_experiment_by_name(name)
                self.experiments[uri, name] = (found.experiment_id if found is not None else
                                               client.create_experiment(name, artifact_location=artifact_location))
        return self.experiments[uri, name]

    def sweep_run(self, client: Any, uri: str, experiment_id: str, study: str, storage: str) -> str:
        """The id of a study's parent run; RUNNING while a writer tracks the study's runs (`close` ends it)."""
        key = (uri, experiment_id, study, storage)
        if key not in self.parents:
            with _store_lock(uri):
                found = client.search_runs(
                    [experiment_id], max_results=1, order_by=["attributes.start_time ASC"],
                    filter_string=f"tags.`aesweep.role` = '{SWEEP_ROLE}' AND tags.`aesweep.study` = '{study}' "
                                  f"AND tags.`aesweep.storage` = '{storage}'")
                if found:
                    if found[0].info.status != "RUNNING":  # a later sweep command adds to the study
                        client.update_run(found[0].info.run_id, status="RUNNING")
                    self.parents[key] = found[0].info.run_id
                else:
                    tags = {"aesweep.role": SWEEP_ROLE, "aesweep.study": study, "aesweep.storage": storage}
                    self.parents[key] = client.create_run(experiment_id, run_name=study, tags=tags).info.run_id
        return self.parents[key]

    @staticmethod
    def log_metrics(run: dict[str, Any], metrics: Mapping[str, float], step: int, **tags: str) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        run["client"].log_batch(run["id"], metrics=[Metric(key, value, now, step) for key, value in metrics.items()],
                                tags=[RunTag(key, value) for key, value in tags.items()])

    def finish(self, run: dict[str, Any], metrics: Mapping[str, float], step: int, status: str,
               files: Sequence[str]) -> None:
        """The final numbers and the status tag in one call, the pictures, the end state."""
        client = run["client"]
        self.log_metrics(run, metrics, step, **{"aesweep.status": status})
        for path in files:
            client.log_artifact(run["id"], path)
        client.set_terminated(run["id"], MLFLOW_STATUS.get(status, "FAILED"))

    def close(self) -> None:
        """When the pipe closes: runs whose process ended before their record end FAILED, status "interrupted";
        the study parent runs this writer tracked into end FINISHED."""
        for run in self.runs.values():
            if run.get("id") is not None and not run.get("failed"):
                with contextlib.suppress(Exception):
                    run["client"].set_tag(run["id"], "aesweep.status", "interrupted")
                    run["client"].set_terminated(run["id"], "FAILED")
        for (uri, *_), parent in self.parents.items():
            with contextlib.suppress(Exception):
                self.clients[uri].set_terminated(parent, "FINISHED")


def serve(lines: Iterable[str]) -> None:
    """The writer process: handle each JSON line until the pipe closes, then end the runs left unfinished and
    the study parent runs (`MLflowWriter.close`)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # offline: no usage telemetry thread
    mlflow_writer = MLflowWriter()
    for line in lines:
        mlflow_writer.handle(json.loads(line))
    mlflow_writer.close()


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


def _store_lock(uri: str) -> contextlib.AbstractContextManager[None]:
    """A lock beside a SQLite store: the writers of a sweep's workers open a new store (MLflow makes its tables),
    its experiment and the study's parent run at the same moment."""
    database = local_file(uri) if uri.startswith("sqlite:") else None
    return _file_lock(database.with_name(database.name + ".lock") if database else None)


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


if __name__ == "__main__":  # the MLflow writer process (WriterProcess)
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    os.nice(WRITER_NICENESS)
    serve(sys.stdin)
    # Everything sent is committed to the store. Skip the interpreter's teardown - mlflow's exit hooks and
    # module cleanup, ~0.8 s of CPU - which the process that waits for this one would wait on.
    sys.stderr.flush()
    os._exit(0)
