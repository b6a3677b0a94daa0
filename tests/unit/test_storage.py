"""A database storage waits out an unreachable server on every path a sweep uses, Optuna's cache included."""

from __future__ import annotations

import sqlite3

import optuna
import pytest
from sqlalchemy import event

from aesweep import storage as storage_module
from aesweep.storage import open_storage


def fail_once_on(engine, statement_start: str) -> list[str]:
    """Make the first statement that starts with `statement_start` fail as a dropped connection does."""
    failed: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def drop(conn, cursor, statement, parameters, context, executemany):
        if not failed and statement.lstrip().upper().startswith(statement_start):
            failed.append(statement)
            raise sqlite3.OperationalError("server closed the connection unexpectedly")

    return failed


@pytest.mark.parametrize("statement_start", ["INSERT INTO TRIALS", "INSERT INTO TRIAL_PARAMS"])
def test_asking_a_trial_and_suggesting_its_parameter_ride_out_a_dropped_connection(
        tmp_path, monkeypatch, statement_start):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="outage")  # Optuna puts its cache in front
    failed = fail_once_on(storage.engine, statement_start)
    monkeypatch.setattr(storage_module.time, "sleep", lambda seconds: None)

    trial = study.ask()
    value = trial.suggest_float("lr", 0.1, 0.2)
    study.tell(trial, value)

    assert len(failed) == 1  # the outage happened, and was waited out
    trials = optuna.load_study(storage=open_storage(f"sqlite:///{tmp_path / 'study.db'}"), study_name="outage").trials
    assert [(t.number, t.params, t.value) for t in trials] == [(0, {"lr": value}, value)]


def test_an_error_that_is_not_an_outage_is_raised_at_once(tmp_path, monkeypatch):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="broken")
    sleeps: list[float] = []
    monkeypatch.setattr(storage_module.time, "sleep", sleeps.append)

    @event.listens_for(storage.engine, "before_cursor_execute")
    def refuse(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO TRIAL_PARAMS"):
            raise sqlite3.DataError("value too long for type character varying(512)")

    trial = study.ask()
    with pytest.raises(Exception, match="during the commit"):
        trial.suggest_float("lr", 0.1, 0.2)
    assert sleeps == []


def test_a_pending_rollback_left_by_a_lost_connection_is_waited_out(monkeypatch):
    """What a restart mid-query surfaces: Optuna's StorageInternalError from SQLAlchemy's PendingRollbackError,
    raised while handling the OperationalError of the dropped connection."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import OperationalError, PendingRollbackError

    sleeps: list[float] = []
    monkeypatch.setattr(storage_module.time, "sleep", sleeps.append)
    calls: list[int] = []

    def read_trials() -> str:
        calls.append(1)
        if len(calls) == 1:
            try:
                try:
                    raise OperationalError("SELECT", {}, sqlite3.OperationalError("terminating connection"))
                except OperationalError:
                    raise PendingRollbackError("Can't reconnect until invalid transaction is rolled back")
            except PendingRollbackError as error:
                raise StorageInternalError("An exception is raised during the commit.") from error
        return "trials"

    assert storage_module.waiting_out_outages(read_trials)() == "trials"
    assert len(calls) == 2 and sleeps == [0.5]


class Clock:
    """Stands in for the storage module's `time`: sleeping moves the clock on at once."""

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def refusing_server(monkeypatch, refusals: int) -> list[int]:
    """A database storage whose server refuses the first `refusals` connections, then opens."""
    attempts: list[int] = []

    def storage_class(url, engine_kwargs):
        attempts.append(1)
        if len(attempts) <= refusals:
            raise RuntimeError('connection to server at "127.0.0.1", port 5432 failed: Connection refused\nmore')
        return "opened"

    monkeypatch.setattr(storage_module, "reconnecting_rdb_storage", lambda: storage_class)
    return attempts


def test_a_sweeps_first_open_of_a_database_it_cannot_reach_fails_after_three_tries(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(storage_module, "time", clock)
    attempts = refusing_server(monkeypatch, refusals=100)
    with pytest.raises(storage_module.ConfigError, match="cannot open it: connection to server at .* refused$"):
        open_storage("postgresql://u@127.0.0.1:5432/db")
    assert len(attempts) == 3 and clock.sleeps == [1.0, 1.0]


def test_a_job_opening_its_study_waits_out_a_server_restart(monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(storage_module, "time", clock)
    attempts = refusing_server(monkeypatch, refusals=5)  # up again 2 + 1 + 2 + 4 = 9 s later
    assert open_storage("postgresql://u@127.0.0.1:5432/db", wait_s=120) == "opened"
    assert len(attempts) == 6 and clock.sleeps == [1.0, 1.0, 1.0, 2.0, 4.0]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"][0] == (
        'storage: cannot open the database (connection to server at "127.0.0.1", port 5432 failed: Connection '
        'refused); trying again in 1 s')


def test_a_job_gives_up_on_a_database_that_stays_away_past_its_wait(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(storage_module, "time", clock)
    refusing_server(monkeypatch, refusals=100)
    with pytest.raises(storage_module.ConfigError, match="cannot open it"):
        open_storage("postgresql://u@127.0.0.1:5432/db", wait_s=10)
    assert clock.sleeps == [1.0, 1.0, 1.0, 2.0, 4.0] and clock.now <= 10
