"""The sweep's live progress line: what it says for a study's state, and when it is drawn."""

import io
import logging
import subprocess
import sys
import textwrap

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from aesweep.errors import ConfigError
from hydra_plugins.aesweep_optuna._progress import SweepProgress, is_shown, study_summary
from hydra_plugins.aesweep_optuna._settings import SweepSettings

X = {"x": FloatDistribution(0, 1)}


def study_with(*states_and_values, directions=("maximize",)):
    """An in-memory study holding finished trials in the given states, then one RUNNING trial (a worker's)."""
    study = optuna.create_study(study_name="smoke", directions=list(directions))
    for state, value in states_and_values:
        values = None if value is None else [value] if not isinstance(value, list) else value
        study.add_trial(create_trial(state=state, values=values, params={"x": 0.5}, distributions=X))
    study.ask()  # RUNNING, as another worker's trial would be
    return study


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_line_counts_trials_by_state_and_names_the_best_trial():
    study = study_with((TrialState.COMPLETE, 0.31), (TrialState.COMPLETE, 0.84), (TrialState.PRUNED, None),
                       (TrialState.FAIL, None), (TrialState.COMPLETE, 0.62))

    with SweepProgress(study, n_trials=10, timeout=None, mode=True, stream=io.StringIO()) as progress:
        line = progress.text

    assert line.startswith("smoke: 5/10 trials |")
    assert line.endswith("ETA ?, 3 complete, 1 pruned, 1 failed, 1 running; best 0.84 (trial 1)")


def test_the_best_of_a_minimised_study_is_its_lowest_value():
    study = study_with((TrialState.COMPLETE, 0.31), (TrialState.COMPLETE, 0.12), directions=("minimize",))

    summary = study_summary(study.trials, study.directions)

    assert summary == "2 complete, 0 pruned, 0 failed, 1 running; best 0.12 (trial 1)"


def test_a_multi_objective_study_shows_the_size_of_its_pareto_front():
    study = study_with((TrialState.COMPLETE, [0.9, 100.0]), (TrialState.COMPLETE, [0.8, 50.0]),
                       (TrialState.COMPLETE, [0.7, 200.0]), directions=("maximize", "minimize"))

    assert study_summary(study.trials, study.directions).endswith("; 2 on the Pareto front")


def test_without_a_finished_trial_the_line_has_no_best_and_no_eta():
    study = study_with()

    with SweepProgress(study, n_trials=4, timeout=None, mode=True, stream=io.StringIO()) as progress:
        line = progress.text

    assert line.startswith("smoke: 0/4 trials |")
    assert line.endswith("ETA ?, 0 complete, 0 pruned, 0 failed, 1 running")


def test_with_a_timeout_the_bar_is_the_time_used_of_it_and_the_trials_are_counted_beside():
    study = study_with((TrialState.COMPLETE, 0.5))

    with SweepProgress(study, n_trials=20, timeout=600, mode=True, stream=io.StringIO()) as progress:
        line = progress.text

    assert line.startswith("smoke: 00:00 of 10:00 |")
    assert "1/20 trials: 1 complete, 0 pruned, 0 failed, 1 running; best 0.5 (trial 0)" in line


def test_a_trial_recorded_since_the_start_shows_at_the_next_update():
    study = study_with((TrialState.COMPLETE, 0.5))
    with SweepProgress(study, n_trials=4, timeout=None, mode=True, stream=io.StringIO()) as progress:
        running = study.trials[-1]
        study.tell(running.number, 0.7)
        progress.update()
        line = progress.text

    assert line.startswith("smoke: 2/4 trials |")
    assert line.endswith("2 complete, 0 pruned, 0 failed, 0 running; best 0.7 (trial 1)")


def test_auto_draws_only_on_a_terminal():
    assert is_shown("auto", Terminal())
    assert not is_shown("auto", io.StringIO())
    assert is_shown(True, io.StringIO())
    assert not is_shown(False, Terminal())


def test_off_the_line_writes_nothing_and_leaves_the_console_alone():
    study, stream = study_with((TrialState.COMPLETE, 0.5)), io.StringIO()
    stdout = sys.stdout

    with SweepProgress(study, n_trials=4, timeout=None, mode="auto", stream=stream) as progress:
        assert sys.stdout is stdout

    assert progress.text == "" and stream.getvalue() == ""


def test_printed_lines_go_above_the_line_and_the_console_is_restored_after(capsys):
    study, stream = study_with((TrialState.COMPLETE, 0.5)), Terminal()
    real_stdout = sys.stdout
    handler = logging.StreamHandler(real_stdout)
    logging.getLogger().addHandler(handler)
    try:
        with SweepProgress(study, n_trials=4, timeout=None, mode="auto", stream=stream):
            print("trial 1 COMPLETE 0.7")
            drawn_before = stream.getvalue()
            assert handler.stream is not real_stdout  # the sweep's log lines go above the line too
        assert sys.stdout is real_stdout and handler.stream is real_stdout
    finally:
        logging.getLogger().removeHandler(handler)

    assert capsys.readouterr().out == "trial 1 COMPLETE 0.7\n"
    assert drawn_before.endswith("1 running; best 0.5 (trial 0)")  # cleared for the print, drawn again after it


def test_lines_of_processes_started_while_the_line_shows_go_above_it_whole():
    # A sweep process drawing the line on its own stderr (stdout leading to the same place), starting a worker
    # process that prints on both, as joblib's workers do; then the sweep's own print, and a worker after the end.
    sweep = textwrap.dedent("""
        import subprocess, sys
        import optuna
        from hydra_plugins.aesweep_optuna._progress import SweepProgress
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(study_name="watched")
        study.enqueue_trial({"x": 1.0})
        study.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=1)
        worker = "import sys; print('worker out'); print('worker err', file=sys.stderr)"
        with SweepProgress(study, n_trials=4, timeout=None, mode=True):
            subprocess.run([sys.executable, "-c", worker], check=True)
            print("sweep line")
        print("after the sweep")
    """)
    shown = subprocess.run([sys.executable, "-c", sweep], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120).stdout.decode()  # bytes: text mode would turn the line's \r into \n

    line = "watched: 1/4 trials"
    for text in ("worker out\n", "worker err\n", "sweep line\n"):
        before = shown[:shown.index(text)]
        # the text starts a line of its own: after the cleared line, or after a whole line written with it
        # (output that reaches the relay in one read, as the worker's last line and the sweep's print may)
        assert before.endswith(("\r", "\n")), (text, shown)
        assert not before.rstrip("\r").endswith("(trial 0)"), (text, shown)  # never glued to the line itself
        assert line in shown[shown.index(text):]  # and the line is drawn again after it
    assert shown.index("worker out") < shown.index("sweep line") < shown.index("after the sweep")
    assert shown.endswith("after the sweep\n")


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_hydra_sweeper_progress_is_auto_true_or_false(value):
    settings = SweepSettings(sampler=None, pruner=None, direction="maximize", objective=None, study_name=None,
                             storage=None, n_trials=4, n_jobs=1, timeout=None, params={}, baseline_study=None,
                             heartbeat_interval=30.0, stale_after=600.0, top_k=10, progress=value)

    with pytest.raises(ConfigError, match=r"hydra\.sweeper\.progress=.* is not allowed: auto, true or false"):
        settings.check_numbers()
