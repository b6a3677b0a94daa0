"""The dispatcher's slots: a run takes the lowest free slot, and with several slots the sweep log says which run
each slot starts and when it ends, naming the run by its folder under the sweep's (``hydra.sweep.subdir``)."""

import logging
import threading
from pathlib import Path

from hydra_plugins.aesweep_optuna._dispatch import Dispatcher, RunJob


class HeldLauncher:
    """A launcher whose jobs end when the test says so: ``release(label)``."""

    def __init__(self):
        self.gates = {}

    def launch(self, job_overrides, initial_job_idx):
        labels = [RunJob(0, None, list(overrides), Path(".")).label for overrides in job_overrides]
        for label in labels:
            self.gates.setdefault(label, threading.Event()).wait(timeout=10)
        return [None] * len(labels)

    def release(self, label):
        self.gates.setdefault(label, threading.Event()).set()


def run(trial, seed):
    subdir = f"{trial}/seed{seed}"
    return RunJob(trial, seed, [f"seed={seed}", f"hydra.sweep.subdir={subdir}"], Path("/sweep") / subdir)


def test_a_run_is_named_by_its_folder_under_the_sweeps():
    assert run(3, 1).label == "3/seed1"
    confirmation = RunJob(3, 10, ["hydra.sweep.subdir=confirm/3/seed10"], Path("/sweep/confirm/3/seed10"))
    assert confirmation.label == "confirm/3/seed10"
    assert RunJob(5, None, ["x=1"], Path("/sweep/5")).label == "5"  # no subdir override: the folder's name


def test_each_run_takes_the_lowest_free_slot_and_the_log_names_slot_and_run(caplog):
    caplog.set_level(logging.INFO, logger="hydra_plugins.aesweep_optuna._dispatch")
    launcher = HeldLauncher()
    dispatcher = Dispatcher(launcher, slots=2)
    first, second, third = run(0, 0), run(0, 1), run(0, 2)
    dispatcher.start(first)
    dispatcher.start(second)
    assert (first.slot, second.slot, dispatcher.free) == (1, 2, 0)

    launcher.release("0/seed0")
    assert dispatcher.next_finished() is first and dispatcher.free == 1
    dispatcher.start(third)
    assert third.slot == 1  # the slot the first run gave back
    launcher.release("0/seed1")
    launcher.release("0/seed2")
    finished = {dispatcher.next_finished().label, dispatcher.next_finished().label}
    assert finished == {"0/seed1", "0/seed2"} and dispatcher.free == 2

    lines = [record.getMessage() for record in caplog.records]
    assert lines[:4] == ["slot 1/2: run 0/seed0 started", "slot 2/2: run 0/seed1 started",
                         lines[2], "slot 1/2: run 0/seed2 started"]
    assert lines[2].startswith("slot 1/2: run 0/seed0 ended after ") and lines[2].endswith(" s")
    assert sorted(line.split(" ended")[0] for line in lines[4:]) == ["slot 1/2: run 0/seed2", "slot 2/2: run 0/seed1"]


def test_a_batch_is_announced_whole_and_its_runs_end_without_a_slot(caplog):
    caplog.set_level(logging.INFO, logger="hydra_plugins.aesweep_optuna._dispatch")
    launcher = HeldLauncher()
    dispatcher = Dispatcher(launcher, slots=2)
    runs = [run(1, seed) for seed in (0, 1, 2)]
    dispatcher.start_batch(runs)
    for each in runs:
        launcher.release(each.label)
    ended = [dispatcher.next_finished() for _ in runs]
    assert all(each.slot is None for each in ended)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "batch of 3 runs started: 1/seed0, 1/seed1, 1/seed2"
    assert sorted(line.split(" ended")[0] for line in lines[1:]) == ["run 1/seed0", "run 1/seed1", "run 1/seed2"]


def test_one_slot_logs_nothing_of_its_own(caplog):
    caplog.set_level(logging.INFO, logger="hydra_plugins.aesweep_optuna._dispatch")
    launcher = HeldLauncher()
    dispatcher = Dispatcher(launcher, slots=1)
    launcher.release("0/seed0")
    dispatcher.start(run(0, 0))
    assert dispatcher.next_finished().label == "0/seed0"
    assert caplog.records == []
