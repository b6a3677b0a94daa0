"""Experiment tracking chosen by the `logger` group: off by default, what a run's parameters and metrics are, and
that a tracker which fails never fails the run."""

import pytest
from helpers import compose_config

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


def test_a_tracker_that_cannot_open_warns_once_and_the_run_goes_on(tmp_path, caplog):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    cfg = compose_config("logger=mlflow", f"logger.tracking_uri=sqlite:///{not_a_folder}/db/mlflow.db")

    tracker = tracking.start(cfg, tmp_path)
    tracker.log_epoch({"epoch": 1, "loss": 0.5})
    tracker.finish({"status": "completed", "epochs": 1}, [])

    warnings = [r.getMessage() for r in caplog.records if "logger=mlflow" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("logger=mlflow: this run is not fully tracked: ")
    assert str(not_a_folder) in warnings[0]


def test_a_store_that_is_not_a_database_warns_once_and_the_next_run_is_tracked(
        tmp_path, caplog):
    from mlflow import MlflowClient

    not_sqlite = tmp_path / "text.db"
    not_sqlite.write_text("not a database")
    broken = tracking.start(compose_config("logger=mlflow", f"logger.tracking_uri=sqlite:///{not_sqlite}"), tmp_path)
    broken.log_epoch({"epoch": 1, "loss": 0.5})
    broken.finish({"status": "completed", "epochs": 1}, [])

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracked = tracking.start(compose_config("logger=mlflow", f"logger.tracking_uri={uri}"), tmp_path / "run")
    tracked.log_epoch({"epoch": 1, "loss": 0.5})
    tracked.finish({"status": "completed", "epochs": 1, "val": {"mapped_acc": 0.75}}, [])

    warnings = [r.getMessage() for r in caplog.records if "logger=mlflow" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("logger=mlflow: this run is not fully tracked: ") and "not a database" in warnings[0]
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("aesweep").experiment_id])
    assert run.data.metrics == {"history/loss": 0.5, "val.mapped_acc": 0.75, "epochs": 1.0}
    assert (run.info.status, run.info.run_name) == ("FINISHED", "run")
