"""Experiment tracking chosen by the `logger` group: off by default, what a run's parameters and metrics are, and
that a tracker which fails never fails the run."""

import json
import subprocess
import sys

import pytest
from helpers import assert_one_error_line, compose_config, train_py
from omegaconf import OmegaConf

from aesweep import tracking
from aesweep.config import validate
from aesweep.errors import ConfigError


def test_logger_none_is_the_default_and_tracks_nothing(tmp_path):
    cfg = compose_config()

    tracker = tracking.start(cfg, tmp_path)
    tracker.log_epoch({"epoch": 1, "loss": 0.5})
    tracker.finish({"status": "completed"}, [])

    assert cfg.logger.name == "none"
    assert type(tracker) is tracking.Tracker
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_logger_name_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^logger\.name='wandb' is not allowed: one of: none, mlflow, tensorboard$"):
        validate(compose_config("logger=tensorboard", "logger.name=wandb"))


def test_the_parameters_are_the_flattened_config_without_the_sweep_link():
    cfg = compose_config("model=conv", "model.channels=[8,16]", "model.hidden=null", "data.subset=512",
                         "++trial.study_name=smoke")

    params = tracking.hyperparameters(cfg)

    assert params["model.channels"] == "[8, 16]"
    assert params["data.subset"] == 512
    assert params["model.hidden"] == "null"
    assert params["seed"] == 0
    assert not any(name.startswith(("trial.", "logger.")) for name in params)


def test_final_metrics_are_the_records_finite_numbers_and_epoch_metrics_the_history_row():
    record = {"status": "pruned", "val": {"mapped_acc": 0.5, "recon_mse": None}, "test": None, "fit": None,
              "params": 1234, "epochs": 3, "epochs_planned": 5, "seconds": float("nan")}

    assert tracking.final_metrics(record) == {"val.mapped_acc": 0.5, "params": 1234.0, "epochs": 3.0,
                                              "epochs_planned": 5.0}
    assert tracking.epoch_metrics({"epoch": 2, "loss": 0.25, "val.nmi": 0.1}) == {"history/loss": 0.25,
                                                                                   "history/val.nmi": 0.1}


@pytest.fixture
def writer_of_this_test():
    """An MLflow writer process started inside the test, so that its warnings reach the test's captured stderr;
    stopped (everything sent written) when the test asks or ends."""
    tracking.stop_writer()
    yield tracking.stop_writer
    tracking.stop_writer()


def mlflow_warnings(capfd):
    return [line for line in capfd.readouterr().err.splitlines() if line.startswith("logger=mlflow")]


def test_a_tracker_that_cannot_open_warns_once_and_the_run_goes_on(tmp_path, capfd, writer_of_this_test):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    cfg = compose_config("logger=mlflow", f"logger.tracking_uri=sqlite:///{not_a_folder}/db/mlflow.db")

    tracker = tracking.start(cfg, tmp_path / "run-1")
    tracker.log_epoch({"epoch": 1, "loss": 0.5})
    tracker.finish({"status": "completed", "epochs": 1}, [])
    writer_of_this_test()

    (warning,) = mlflow_warnings(capfd)
    assert warning.startswith("logger=mlflow: run run-1 is not fully tracked: ")
    assert str(not_a_folder) in warning


def test_a_store_that_is_not_a_database_warns_once_and_the_next_run_is_tracked(tmp_path, capfd, writer_of_this_test):
    from mlflow import MlflowClient

    not_sqlite = tmp_path / "text.db"
    not_sqlite.write_text("not a database")
    broken = tracking.start(compose_config("logger=mlflow", f"logger.tracking_uri=sqlite:///{not_sqlite}"),
                            tmp_path / "broken")
    broken.log_epoch({"epoch": 1, "loss": 0.5})
    broken.finish({"status": "completed", "epochs": 1}, [])

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracked = tracking.start(compose_config("logger=mlflow", f"logger.tracking_uri={uri}"), tmp_path / "run")
    tracked.log_epoch({"epoch": 1, "loss": 0.5})
    tracked.finish({"status": "completed", "epochs": 1, "val": {"mapped_acc": 0.75}}, [])
    writer_of_this_test()

    (warning,) = mlflow_warnings(capfd)
    assert warning.startswith("logger=mlflow: run broken is not fully tracked: ") and "not a database" in warning
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("aesweep").experiment_id])
    assert run.data.metrics == {"history/loss": 0.5, "val.mapped_acc": 0.75, "epochs": 1.0}
    assert (run.info.status, run.info.run_name) == ("FINISHED", "run")


def test_a_run_whose_process_ends_before_its_record_ends_failed_in_mlflow(tmp_path, writer_of_this_test):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = tracking.start(compose_config("logger=mlflow", f"logger.tracking_uri={uri}"), tmp_path / "cut-short")
    tracker.log_epoch({"epoch": 1, "loss": 0.5})
    writer_of_this_test()  # the pipe closes as when the run's process dies: no finish was sent

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("aesweep").experiment_id])
    assert (run.info.status, run.data.tags["aesweep.status"]) == ("FAILED", "interrupted")
    assert run.data.metrics == {"history/loss": 0.5}


def test_the_runs_own_process_never_imports_mlflow(tmp_path):
    """MLflow's import and store (~3 s of CPU) belong to the writer process, beside the training loop."""
    script = f"""
import sys
from pathlib import Path
from aesweep import tracking
from aesweep.train import checked_config
cfg, _ = checked_config(["logger=mlflow", "logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"])
tracker = tracking.start(cfg, Path("{tmp_path / 'run'}"))
tracker.log_epoch({{"epoch": 1, "loss": 0.5}})
tracker.finish({{"status": "completed", "epochs": 1}}, [])
tracking.stop_writer()
print("mlflow imported:", "mlflow" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    assert done.stdout.strip() == "mlflow imported: False", done.stderr
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("aesweep").experiment_id])
    assert (run.info.status, run.data.metrics) == ("FINISHED", {"history/loss": 0.5, "epochs": 1.0})


def test_preparing_with_logger_none_starts_nothing(tmp_path, writer_of_this_test):
    tracking.prepare(compose_config(), open_store=True)

    assert tracking._writer is None
    assert list(tmp_path.iterdir()) == []


def test_preparing_the_config_of_an_app_without_a_logger_group_starts_nothing(writer_of_this_test):
    """The sweeper also sweeps other Hydra apps (Hydra's own Optuna examples): their configs have no `logger`."""
    tracking.prepare(OmegaConf.create({"x": 1.0}), open_store=True)

    assert tracking._writer is None


def test_a_sweep_prepares_mlflow_by_opening_its_store_before_any_run(tmp_path, writer_of_this_test):
    """The sweeper prepares once its settings are checked, so a store made then is one the sweep goes on to use."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.prepare(compose_config("logger=mlflow", f"logger.tracking_uri={uri}"), open_store=True)
    writer_of_this_test()

    client = MlflowClient(tracking_uri=uri)  # MLflow's tables are there: it reads the store without making them
    assert [experiment.name for experiment in client.search_experiments()] == ["Default"]
    assert client.search_runs(["0"]) == []


def test_a_run_prepares_mlflow_without_making_a_store(tmp_path, writer_of_this_test):
    """A run prepares before its device and data are checked: a run refused there leaves no store behind."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.prepare(compose_config("logger=mlflow", f"logger.tracking_uri={uri}"), open_store=False)
    tracking._writer.process.communicate(timeout=120)  # the pipe closed, the writer has done all it was sent

    assert tracking._writer.process.returncode == 0
    assert list(tmp_path.iterdir()) == []


def test_preparing_without_opening_loads_mlflows_sql_store_code_and_touches_no_file(tmp_path):
    """Most of opening a SQLite store is importing MLflow's SQL store module (~0.7 s): a writer prepared before
    the settings are checked does that much, so that opening the store once they pass is quick."""
    script = f"""
import sys
from aesweep import tracking
tracking.MLflowWriter().handle({{"prepare": {{"uri": "sqlite:///{tmp_path / 'mlflow.db'}", "open": False}}}})
print("sql store module:", "mlflow.store.tracking.sqlalchemy_store" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    assert done.stdout.strip() == "sql store module: True", done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_writer_that_was_only_importing_mlflow_is_stopped_not_waited_for(tmp_path, writer_of_this_test):
    """A sweep refused by its settings exits with its error at once, not after mlflow's import (~2 s)."""
    tracking.prepare(compose_config("logger=mlflow", f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"),
                     open_store=False)
    process = tracking._writer.process
    writer_of_this_test()

    assert process.returncode == -9  # killed: nothing it was sent would have been written
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_refused_by_its_settings_with_logger_mlflow_leaves_no_store(tmp_path):
    """The sweeper starts mlflow's import as it is set up, before the settings are checked; the store is
    opened only once they pass."""
    done = train_py("-m", "sweep=smoke", "hydra.sweeper.n_trials=0", "logger=mlflow",
                    f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                    f"logger.artifact_location={tmp_path / 'mlartifacts'}",
                    f"hydra.sweeper.storage={tmp_path / 'journal.log'}", f"hydra.sweep.dir={tmp_path / 'sweep'}")

    assert_one_error_line(done, "hydra.sweeper.n_trials")
    assert list(tmp_path.iterdir()) == []


class InProcessWriter:
    """The MLflow writer's side run in the test's process, each message handled as it is sent (through JSON, as
    over the pipe), so the store can be read between two messages."""

    def __init__(self):
        self.mlflow_writer = tracking.MLflowWriter()

    def send(self, message):
        self.mlflow_writer.handle(json.loads(json.dumps(message)))


def test_a_studys_runs_nest_under_one_parent_run_which_runs_while_a_writer_tracks_the_study(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)

    def track_trial(number):
        cfg = compose_config("logger=mlflow", f"logger.tracking_uri={uri}", "++trial.study_name=study",
                             f"++trial.storage={tmp_path / 'journal.log'}", f"++trial.trial_number={number}")
        tracking.start(cfg, tmp_path / str(number)).finish({"status": "completed", "epochs": 1}, [])

    def runs():
        found = client.search_runs([client.get_experiment_by_name("aesweep").experiment_id])
        return ({r.info.run_name: r for r in found if r.data.tags.get("aesweep.role") == "sweep"},
                {r.info.run_name: r for r in found if "mlflow.parentRunId" in r.data.tags})

    first = InProcessWriter()
    monkeypatch.setattr(tracking, "writer", lambda: first)
    track_trial(0)
    track_trial(1)
    ((parent_id, status_while_tracking),) = [(r.info.run_id, r.info.status) for r in runs()[0].values()]
    first.mlflow_writer.close()  # the pipe closed: the sweep's process ended
    status_after = runs()[0]["study"].info.status

    second = InProcessWriter()  # a later sweep command adds to the study
    monkeypatch.setattr(tracking, "writer", lambda: second)
    track_trial(2)
    parents, children = runs()
    status_while_resumed = parents["study"].info.status
    second.mlflow_writer.close()

    assert (status_while_tracking, status_after, status_while_resumed) == ("RUNNING", "FINISHED", "RUNNING")
    assert list(parents) == ["study"] and runs()[0]["study"].info.status == "FINISHED"
    assert {name: run.data.tags["mlflow.parentRunId"] for name, run in children.items()} == {
        "trial-0": parent_id, "trial-1": parent_id, "trial-2": parent_id}
    assert {run.info.status for run in children.values()} == {"FINISHED"}
