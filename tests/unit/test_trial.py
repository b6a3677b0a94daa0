"""The job side of the sweeper link: aesweep.trial.TrialReporter, the pruner it builds, and the run record's metric paths."""

import optuna
import pytest

from aesweep.errors import ConfigError
from aesweep.record import lookup as lookup_metric
from aesweep.storage import open_storage
from aesweep.trial import (BUSY_ATTR, ENDED_ATTR, PRUNER_ATTR, STARTED_ATTR, TrialReporter, checked_pruner,
                           seed_statistic, slot_use)

THRESHOLD = {"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5}


def running_trial(tmp_path, directions=("maximize",), pruner_cfg=THRESHOLD):
    """A study in a journal file with one RUNNING trial, as the sweeper leaves it for a job."""
    storage_path = str(tmp_path / "journal.log")
    study = optuna.create_study(study_name="s", storage=open_storage(storage_path), directions=list(directions))
    study.set_user_attr(PRUNER_ATTR, pruner_cfg)
    trial = study.ask()
    trial_cfg = {
        "study_name": "s",
        "storage": storage_path,
        "trial_id": trial._trial_id,
        "trial_number": trial.number,
        "report": "val.mapped_acc",
    }
    return study, trial, trial_cfg


def test_a_pruner_config_builds_its_pruner_or_is_refused_in_one_line_naming_the_key():
    assert isinstance(checked_pruner(THRESHOLD, "hydra.sweeper.pruner"), optuna.pruners.ThresholdPruner)
    assert isinstance(checked_pruner(None, "hydra.sweeper.pruner"), optuna.pruners.NopPruner)

    with pytest.raises(ConfigError) as wrong_argument:
        checked_pruner({"_target_": "optuna.pruners.MedianPruner", "warmup": 5}, "hydra.sweeper.pruner")
    message = str(wrong_argument.value)
    assert message.startswith("hydra.sweeper.pruner='optuna.pruners.MedianPruner' is not allowed: null or an optuna")
    assert message.endswith("(TypeError: MedianPruner.__init__() got an unexpected keyword argument 'warmup')")
    assert "\n" not in message

    with pytest.raises(ConfigError, match=r"hydra.sweeper.pruner='collections.OrderedDict' is not allowed"):
        checked_pruner({"_target_": "collections.OrderedDict"}, "hydra.sweeper.pruner")  # builds, but no pruner


def test_a_pruner_given_as_a_name_instead_of_a_config_is_refused_in_one_line():
    with pytest.raises(ConfigError) as refused:
        checked_pruner("median", "hydra.sweeper.pruner")
    assert str(refused.value) == (
        "hydra.sweeper.pruner='median' is not allowed: null or an optuna.pruners class with its arguments, "
        "e.g. {_target_: optuna.pruners.MedianPruner}"
    )


def test_outside_a_sweep_there_is_no_reporter():
    assert TrialReporter.from_config({"study_name": None, "storage": None, "trial_id": None}) is None
    assert TrialReporter.from_config(None) is None


def test_report_stores_the_value_per_epoch_and_relays_the_pruners_verdict(tmp_path):
    study, trial, trial_cfg = running_trial(tmp_path)
    reporter = TrialReporter.from_config(trial_cfg)
    assert reporter.report(1, {"val.mapped_acc": 0.7}) is False
    assert reporter.report(2, {"val": {"mapped_acc": 0.3}}) is True
    assert study.trials[0].intermediate_values == {1: 0.7, 2: 0.3}


def test_after_the_last_epoch_the_value_is_reported_but_the_trial_is_not_pruned(tmp_path):
    study, _, trial_cfg = running_trial(tmp_path)  # the threshold pruner would cut 0.3
    assert TrialReporter.from_config(trial_cfg).report(5, {"val.mapped_acc": 0.3}, last=True) is False
    assert study.trials[0].intermediate_values == {5: 0.3}


def test_multi_objective_studies_are_never_pruned(tmp_path):
    study, _, trial_cfg = running_trial(tmp_path, directions=("maximize", "minimize"))
    assert TrialReporter.from_config(trial_cfg).report(1, {"val.mapped_acc": 0.0}) is False
    assert study.trials[0].intermediate_values == {}


def test_a_nan_value_is_not_reported_and_does_not_prune(tmp_path):
    study, _, trial_cfg = running_trial(tmp_path)
    assert TrialReporter.from_config(trial_cfg).report(1, {"val.mapped_acc": float("nan")}) is False
    assert study.trials[0].intermediate_values == {}


def test_a_trial_closed_by_the_sweeper_tells_the_job_to_stop(tmp_path):
    study, trial, trial_cfg = running_trial(tmp_path)
    reporter = TrialReporter.from_config(trial_cfg)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert reporter.report(1, {"val.mapped_acc": 0.9}) is True


def test_a_missing_report_metric_names_trial_report_and_the_metrics_there_are(tmp_path):
    _, _, trial_cfg = running_trial(tmp_path)
    reporter = TrialReporter.from_config({**trial_cfg, "report": "val.nmi"})
    with pytest.raises(ConfigError, match=r"trial.report='val.nmi'.*val.mapped_acc"):
        reporter.report(1, {"val": {"mapped_acc": 0.5}})


def test_a_wrong_trial_number_is_refused(tmp_path):
    _, _, trial_cfg = running_trial(tmp_path)
    with pytest.raises(ConfigError, match="trial.trial_number"):
        TrialReporter.from_config({**trial_cfg, "trial_number": 7})


def test_open_storage_reads_journal_files_and_sqlite_urls(tmp_path):
    journal = open_storage(str(tmp_path / "new" / "folder" / "journal.log"))
    sqlite = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    for storage in (journal, sqlite):
        optuna.create_study(study_name="a", storage=storage)
        assert optuna.study.get_all_study_names(storage) == ["a"]


def test_open_storage_refuses_an_unwritable_path_in_one_line():
    with pytest.raises(ConfigError, match="storage='/proc/no/journal.log' is not allowed"):
        open_storage("/proc/no/journal.log")


def test_lookup_metric_reads_flat_and_nested_paths():
    assert lookup_metric({"val.nmi": 0.2}, "val.nmi") == 0.2
    assert lookup_metric({"val": {"nmi": 0.3}, "params": 12}, "val.nmi") == 0.3
    assert lookup_metric({"params": 12}, "params") == 12
    assert lookup_metric({"val": {}}, "val.nmi") is None


# ---------------------------------------------------------------- a trial run once per seed


@pytest.mark.parametrize("name, maximize, expected", [
    ("mean", True, 0.8),
    ("min", True, 0.7),        # the worst seed of a maximised objective
    ("min", False, 0.9),       # ... and of a minimised one
    ("mean-std", True, 0.8 - 0.1),
    ("mean-std", False, 0.8 + 0.1),
])
def test_the_statistic_over_seeds_is_computed_as_named(name, maximize, expected):
    assert seed_statistic([0.7, 0.8, 0.9], name, maximize) == pytest.approx(expected)


def test_mean_std_of_one_seed_is_its_value_and_an_unknown_statistic_is_refused():
    assert seed_statistic([0.6], "mean-std") == 0.6
    with pytest.raises(ValueError, match="unknown statistic 'median'"):
        seed_statistic([0.6], "median")


def test_each_seeds_run_reports_the_statistic_over_the_seeds_that_reached_the_epoch(tmp_path):
    study, trial, trial_cfg = running_trial(tmp_path, pruner_cfg=None)
    over_seeds = {**trial_cfg, "seeds": [0, 1], "statistic": "mean"}
    first, second = TrialReporter.from_config(over_seeds, seed=0), TrialReporter.from_config(over_seeds, seed=1)

    assert first.report(1, {"val.mapped_acc": 0.6}) is False
    assert study.trials[0].intermediate_values == {1: 0.6}  # only seed 0 has reached epoch 1
    assert second.report(1, {"val.mapped_acc": 0.8}) is False
    assert study.trials[0].intermediate_values == {1: pytest.approx(0.7)}  # now both
    assert first.report(2, {"val.mapped_acc": 0.9}) is False
    assert study.trials[0].intermediate_values == {1: pytest.approx(0.7), 2: 0.9}


def test_a_pruned_seed_run_stops_its_siblings_at_their_next_epoch(tmp_path):
    study, trial, trial_cfg = running_trial(tmp_path)  # ThresholdPruner(lower=0.5)
    over_seeds = {**trial_cfg, "seeds": [0, 1], "statistic": "mean"}
    first, second = TrialReporter.from_config(over_seeds, seed=0), TrialReporter.from_config(over_seeds, seed=1)

    assert first.report(1, {"val.mapped_acc": 0.9}) is False
    assert second.report(1, {"val.mapped_acc": 0.0}) is True  # the mean over both, 0.45, is below 0.5
    assert first.report(2, {"val.mapped_acc": 0.95}) is True  # its sibling was pruned: it stops too


def timed_trial(number, started, ended, busy):
    return optuna.trial.create_trial(value=0.5, user_attrs={STARTED_ATTR: started, ENDED_ATTR: ended, BUSY_ATTR: busy})


def test_slot_use_is_the_runs_slot_seconds_over_slots_times_the_span_of_all_runs():
    # Two slots from t=100 to t=200: trial 0 held one slot 100 s, trial 1 ran 2 runs of 40 s in the other slot.
    trials = [timed_trial(0, 100.0, 200.0, 100.0), timed_trial(1, 110.0, 190.0, 80.0)]
    assert slot_use(trials, slots=2) == pytest.approx((180.0 / 200.0, 100.0))
    assert slot_use(trials, slots=1) == pytest.approx((1.8, 100.0))  # more than one slot's worth: it says so
    untimed = optuna.trial.create_trial(value=0.1)  # a trial recorded before it ran any run (its sampler failed)
    assert slot_use([untimed, *trials], slots=2) == pytest.approx((0.9, 100.0))
    assert slot_use([untimed], slots=2) is None
