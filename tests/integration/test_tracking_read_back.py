"""Offline experiment tracking read back through the libraries' own readers: MLflow's MlflowClient over a real
smoke sweep's SQLite store, TensorBoard's EventAccumulator over a real run's event files; the numbers are the
run's own metrics.json and history.csv."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import compose_config, train_py

from aesweep.train import run

STUDY = "smoke-mlflow"
N_TRIALS = 2
FINAL = ("val.mapped_acc", "val.nmi", "test.mapped_acc", "test.recon_mse", "fit.mapped_acc", "params", "epochs",
         "seconds")

pytestmark = pytest.mark.timeout(240)


def record_of(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def number(record, path):
    split, _, name = path.partition(".")
    return record[split][name] if name else record[split]


# ------------------------------------------------------------------------------------------------- MLflow


@pytest.fixture(scope="module")
def mlflow_sweep(tmp_path_factory):
    """A 2-trial smoke sweep with logger=mlflow; (client, sweep folder)."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    done = train_py("-m", "sweep=smoke", f"hydra.sweeper.n_trials={N_TRIALS}", f"hydra.sweeper.study_name={STUDY}",
                    f"hydra.sweeper.storage={root / 'journal.log'}", f"hydra.sweep.dir={root / 'sweep'}",
                    "trainer.threads=1", "logger=mlflow", f"logger.tracking_uri=sqlite:///{root / 'mlflow.db'}",
                    f"logger.artifact_location={root / 'mlartifacts'}", "logger.experiment=tests")
    assert done.returncode == 0, done.stderr
    assert "not fully tracked" not in done.stdout + done.stderr
    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}"), root / "sweep"


def trial_runs(client):
    experiment = client.get_experiment_by_name("tests")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`aesweep.study` = '{STUDY}'")
    parents = [r for r in runs if r.data.tags.get("aesweep.role") == "sweep"]
    children = sorted((r for r in runs if "mlflow.parentRunId" in r.data.tags), key=lambda r: r.info.run_name)
    return parents, children


def test_mlflow_nests_each_trial_under_one_run_for_the_study(mlflow_sweep):
    client, _ = mlflow_sweep
    parents, children = trial_runs(client)

    assert [p.info.run_name for p in parents] == [STUDY]
    assert [c.info.run_name for c in children] == [f"trial-{n}" for n in range(N_TRIALS)]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert [c.info.status for c in children] == ["FINISHED"] * N_TRIALS


def test_mlflow_final_metrics_are_the_run_records(mlflow_sweep):
    client, sweep_dir = mlflow_sweep
    _, children = trial_runs(client)

    for child in children:
        record = record_of(sweep_dir / child.data.tags["aesweep.trial"])
        assert {name: child.data.metrics[name] for name in FINAL} == {name: number(record, name) for name in FINAL}


def test_mlflow_per_epoch_metrics_are_the_history_rows(mlflow_sweep):
    client, sweep_dir = mlflow_sweep
    _, children = trial_runs(client)

    for child in children:
        history = pd.read_csv(sweep_dir / child.data.tags["aesweep.trial"] / "history.csv")
        for column in ("loss", "val.mapped_acc", "lr"):
            logged = sorted((m.step, m.value)
                            for m in client.get_metric_history(child.info.run_id, f"history/{column}"))
            assert logged == list(zip(history["epoch"], history[column]))


def test_mlflow_params_are_the_trials_config_and_the_pictures_its_artifacts(mlflow_sweep, tmp_path):
    client, sweep_dir = mlflow_sweep
    _, children = trial_runs(client)

    for child in children:
        run_dir = sweep_dir / child.data.tags["aesweep.trial"]
        config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
        assert child.data.params["model.bottleneck"] == str(config["model"]["bottleneck"])
        assert child.data.params["optimizer.lr"] == str(config["optimizer"]["lr"])
        artifacts = sorted(a.path for a in client.list_artifacts(child.info.run_id))
        assert artifacts == ["confusion.png", "reconstructions.png"]
        local = client.download_artifacts(child.info.run_id, "confusion.png", str(tmp_path))
        assert Path(local).read_bytes() == (run_dir / "confusion.png").read_bytes()


def test_mlflow_tracks_every_run_of_a_sweep_whose_jobs_run_in_joblib_workers(tmp_path):
    """Each worker process has a writer of its own; the sweep command ends with every run written and the study's
    parent run finished."""
    from mlflow import MlflowClient

    done = train_py("-m", "sweep=smoke", "hydra.sweeper.n_trials=2", "hydra.sweeper.study_name=smoke-joblib",
                    f"hydra.sweeper.storage={tmp_path / 'journal.log'}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                    "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2", "trainer.threads=1",
                    "logger=mlflow", f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                    f"logger.artifact_location={tmp_path / 'mlartifacts'}")
    assert done.returncode == 0, done.stderr

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("aesweep").experiment_id],
                              filter_string="tags.`aesweep.trial` != ''")
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [("trial-0", "FINISHED"), ("trial-1", "FINISHED")]
    (parent,) = client.search_runs([client.get_experiment_by_name("aesweep").experiment_id],
                                   filter_string="tags.`aesweep.role` = 'sweep'")
    assert parent.info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    for child in runs:
        record = record_of(tmp_path / "sweep" / child.data.tags["aesweep.trial"])
        assert child.data.metrics["test.mapped_acc"] == record["test"]["mapped_acc"]


# ---------------------------------------------------------------------------------------------- TensorBoard


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory, mnist_root):
    out_dir = tmp_path_factory.mktemp("tensorboard")
    cfg = compose_config("logger=tensorboard", f"data.root={mnist_root}", "data.subset=512", "data.val_size=1000",
                         "trainer.epochs=2", "trainer.threads=1", "trainer.save_weights=false", "model.bottleneck=16",
                         "eval.readout=kmeans")
    run(cfg, out_dir)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out_dir / "tensorboard"))
    events.Reload()
    return events, out_dir


def test_tensorboard_scalars_per_epoch_are_the_history_rows(tensorboard_run):
    events, out_dir = tensorboard_run
    history = pd.read_csv(out_dir / "history.csv")

    for column in ("loss", "val.mapped_acc", "val.nmi", "lr"):
        logged = [(e.step, e.value) for e in events.Scalars(f"history/{column}")]
        assert [step for step, _ in logged] == list(history["epoch"])
        assert [value for _, value in logged] == pytest.approx(list(history[column]), rel=1e-6)  # float32


def test_tensorboard_hparams_hold_the_config_and_the_final_metrics_of_the_record(tensorboard_run):
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    events, out_dir = tensorboard_run
    record = record_of(out_dir)
    session = HParamsPluginData.FromString(events.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    hparams = session.session_start_info.hparams

    assert hparams["model.bottleneck"].number_value == 16
    assert hparams["eval.readout"].string_value == "kmeans"
    for name in FINAL:
        (final,) = events.Scalars(name)
        assert final.value == pytest.approx(number(record, name), rel=1e-6)
