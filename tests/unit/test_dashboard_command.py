"""`aesweep dashboard`: what it refuses in one line, where a storage's trial files live, and how a trial's files
become Optuna artifacts the dashboard shows."""

import socket
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState

from aesweep.cli import main
from aesweep.dashboard import artifact_dir
from aesweep.storage import open_storage
from hydra_plugins.aesweep_optuna._artifacts import upload_run_files
from hydra_plugins.aesweep_optuna._outcome import RunOutcome


def journal_with_study(folder: Path, name: str = "smoke") -> Path:
    path = folder / "journal.log"
    optuna.create_study(study_name=name, storage=open_storage(str(path)))
    return path


def refused(capsys, *arguments) -> str:
    """Run `aesweep dashboard ...`; it must exit 2 with exactly one error line, which is returned."""
    assert main(["dashboard", *arguments]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("aesweep dashboard: error: ")
    return err


def test_a_folder_without_a_study_is_refused(tmp_path, capsys):
    err = refused(capsys, str(tmp_path))

    assert f"{tmp_path} holds no readable study.yaml" in err


def test_a_missing_storage_file_is_refused_and_not_created(tmp_path, capsys):
    missing = tmp_path / "outputs" / "optuna" / "journal.log"

    err = refused(capsys, str(missing))

    assert f"storage {missing} cannot be read: no such file" in err
    assert not missing.exists() and not missing.parent.exists()


def test_a_file_that_is_no_storage_is_refused(tmp_path, capsys):
    garbage = tmp_path / "journal.log"
    garbage.write_bytes(b"\x89PNG not a journal\n")

    err = refused(capsys, str(garbage))

    assert f"storage {garbage} cannot be read: " in err


def test_a_sqlite_file_without_optuna_tables_is_refused(tmp_path, capsys):
    import sqlite3

    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x INTEGER)").connection.commit()

    err = refused(capsys, f"sqlite:///{tmp_path / 'other.db'}")

    assert "cannot be read: " in err


def test_a_sweep_folder_whose_study_was_deleted_is_refused(tmp_path, capsys):
    journal = journal_with_study(tmp_path, "other")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "study.yaml").write_text(yaml.safe_dump({"study_name": "smoke", "storage": str(journal)}))

    err = refused(capsys, str(sweep))

    assert f"study 'smoke' is not in {journal}" in err


def test_a_port_in_use_is_refused(tmp_path, capsys):
    journal = journal_with_study(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        err = refused(capsys, str(journal), "--port", str(port))

    assert f"--port={port} on 127.0.0.1 is not free" in err


def test_a_port_outside_0_to_65535_is_refused(tmp_path, capsys):
    err = refused(capsys, str(journal_with_study(tmp_path)), "--port", "70000")

    assert "'70000' is not allowed: a port number 0-65535" in err


def test_trial_files_live_beside_a_journal_or_sqlite_file_and_under_outputs_for_a_server(tmp_path):
    journal = tmp_path / "optuna" / "journal.log"
    assert artifact_dir(str(journal), Path("/elsewhere")) == tmp_path / "optuna" / "artifacts"
    assert artifact_dir(f"sqlite:///{tmp_path}/db/studies.db", Path("/elsewhere")) == tmp_path / "db" / "artifacts"
    assert artifact_dir("postgresql://u:p@db:5432/aesweep", tmp_path) == tmp_path / "outputs" / "optuna" / "artifacts"


def run_folder(path: Path, *names: str) -> Path:
    path.mkdir(parents=True)
    for name in names:
        (path / name).write_bytes(f"contents of {path.name}/{name}".encode())
    return path


def artifacts_of(trial, storage, store_dir):
    metas = get_all_artifact_meta(trial, storage=storage)
    return {meta.filename: (store_dir / meta.artifact_id).read_bytes() for meta in metas}


def test_a_trial_uploads_the_files_its_run_left(tmp_path):
    storage = open_storage(str(tmp_path / "journal.log"))
    study = optuna.create_study(study_name="smoke", storage=storage)
    trial = study.ask()
    run = run_folder(tmp_path / "sweep" / "0", "confusion.png", "reconstructions.png", "metrics.json", "history.csv",
                     "model.pt")

    uploaded = upload_run_files(trial, [RunOutcome(None, run, TrialState.COMPLETE)], str(tmp_path / "journal.log"),
                                tmp_path)

    files = artifacts_of(trial, storage, tmp_path / "artifacts")
    assert uploaded == 4
    assert sorted(files) == ["confusion.png", "history.csv", "metrics.json", "reconstructions.png"]
    assert files["confusion.png"] == b"contents of 0/confusion.png"


def test_a_trial_over_seeds_uploads_each_seeds_files_named_by_seed(tmp_path):
    storage = open_storage(str(tmp_path / "journal.log"))
    trial = optuna.create_study(study_name="smoke", storage=storage).ask()
    seed0 = run_folder(tmp_path / "sweep" / "0" / "seed0", "confusion.png", "metrics.json")
    seed1 = run_folder(tmp_path / "sweep" / "0" / "seed1", "metrics.json")  # pruned: no pictures

    upload_run_files(trial, [RunOutcome(0, seed0, TrialState.COMPLETE), RunOutcome(1, seed1, TrialState.PRUNED)],
                     str(tmp_path / "journal.log"), tmp_path)

    files = artifacts_of(trial, storage, tmp_path / "artifacts")
    assert sorted(files) == ["seed0-confusion.png", "seed0-metrics.json", "seed1-metrics.json"]
    assert files["seed1-metrics.json"] == b"contents of seed1/metrics.json"


def test_a_failed_upload_is_a_warning_not_a_failed_trial(tmp_path, caplog):
    storage = open_storage(str(tmp_path / "journal.log"))
    study = optuna.create_study(study_name="smoke", storage=storage)
    trial = study.ask()
    study.tell(trial, 0.5)  # closed elsewhere: Optuna refuses attributes on it
    run = run_folder(tmp_path / "0", "metrics.json")

    assert upload_run_files(trial, [RunOutcome(None, run, TrialState.COMPLETE)], str(tmp_path / "journal.log"),
                            tmp_path) == 0
    assert "trial 0: its files were not uploaded for the dashboard" in caplog.text


@pytest.mark.parametrize("argument", ["--port", "--host"])
def test_help_names_the_options(argument, capsys):
    assert main(["dashboard", "--help"]) == 0
    assert argument in capsys.readouterr().out
