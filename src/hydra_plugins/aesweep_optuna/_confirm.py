"""What a sweep is measured against: the baseline before the search, the confirmation after it.

baseline  ``baseline_overrides`` (e.g. the blog's recipe) on the sweep's own budget and seeds, measured
          into the study ``baseline_study`` when the storage has no completed baseline and no worker is
          measuring one (a measurement cut short by Ctrl-C or a killed worker is made again by the next
          command), in a sweep folder of its own (outputs/sweeps/<baseline_study>/<time>/), so the summary
          always states the gain.
confirm   once no trial of the study is running any more, the ``confirm.top_k`` best COMPLETE trials are
          re-run on ``confirm.seeds`` - fresh seeds the search never used - and scored on the held-out test
          split. ``confirm.csv`` holds every run; the study keeps the figures, so best.yaml, the summary and
          ``aesweep compare`` show them beside the search's. A study confirms each trial once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pandas as pd
from omegaconf import OmegaConf
from optuna.trial import TrialState

from aesweep import record
from aesweep.io import write_csv_atomic
from aesweep.storage import write_study_file

from . import _tables
from ._tables import CONFIRM_ATTR, study_rank, test_twin
from ._dispatch import Dispatcher, RunJob
from ._outcome import combine, judge_run
from ._plan import OBJECTIVES_ATTR, SEEDS_ATTR, Plan
from ._workers import HEARTBEAT_ATTR, WORKER_ATTR, Heartbeat, claim_lock, fail_stale_trials

if TYPE_CHECKING:
    from ._sweep import OptunaSweep

log = logging.getLogger(__name__)

CONFIRM_FILE = "confirm.csv"


def run_all(dispatcher: Dispatcher, runs: list[RunJob]) -> list[RunJob]:
    """Every run through the dispatcher, as many at once as it has slots; back in the order given."""
    waiting, done = list(runs), []
    while waiting or dispatcher.running:
        while waiting and dispatcher.free > 0:
            dispatcher.start(waiting.pop(0))
        done.append(dispatcher.next_finished())
    return sorted(done, key=runs.index)


# ---------------------------------------------------------------------------------------------- baseline


def measure_baseline(sweep: OptunaSweep, plan: Plan, dispatcher: Dispatcher, heartbeat: Heartbeat) -> None:
    settings = sweep.settings
    name = plan.baseline_study
    if not settings.baseline_overrides or not name or name == plan.study.study_name:
        return
    with claim_lock(plan.storage_url, name):
        if name in optuna.study.get_all_study_names(plan.storage):
            study = optuna.load_study(study_name=name, storage=plan.storage)
            fail_stale_trials(plan.storage, study.get_trials(deepcopy=False), sweep.worker, settings.stale_after)
            states = {t.state for t in study.get_trials(deepcopy=False)}
            if states & {TrialState.COMPLETE, TrialState.RUNNING}:  # measured, or being measured by another worker
                return
            log.info("study '%s' holds no completed baseline: measuring it again", name)
        else:
            study = optuna.create_study(storage=plan.storage, study_name=name,
                                        directions=[d.name.lower() for d in plan.study.directions])
            study.set_user_attr(OBJECTIVES_ATTR, plan.objectives)
            study.set_user_attr(SEEDS_ATTR, {"seeds": settings.seeds, "statistic": settings.seed_statistic})
        trial = study.ask()
        # owned like a search trial, so that a killed worker's measurement is found stale and made again
        plan.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, sweep.worker.as_attr())
        plan.storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time())
    heartbeat.add(trial._trial_id)
    try:
        _measure(sweep, plan, dispatcher, study, trial)
    except KeyboardInterrupt as interrupt:
        trial.set_user_attr("reason", f"sweep interrupted ({str(interrupt) or 'Ctrl-C'})")
        study.tell(trial, state=TrialState.FAIL)
        raise
    finally:
        heartbeat.discard(trial._trial_id)


def _measure(sweep: OptunaSweep, plan: Plan, dispatcher: Dispatcher, study: optuna.Study, trial: optuna.Trial) -> None:
    """The baseline's runs, one per seed, told to its study as one trial."""
    settings, name = sweep.settings, plan.baseline_study
    overrides = plan.fixed + list(settings.baseline_overrides)
    # named as `sweep=<baseline_study>` names its folder, whichever dataset the study is named for, so that
    # collect's sweep column reads `baseline` for every dataset's baseline runs
    folder = baseline_folder(plan.sweep_dir, settings.baseline_study)
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(sweep.config, folder / "multirun.yaml")  # a sweep folder of its own for `aesweep collect`
    log.info("measuring the baseline %s into study '%s' (%s)", " ".join(settings.baseline_overrides), name, folder)
    trial.set_user_attr("overrides", overrides)
    runs = []
    for seed in settings.seeds or [None]:
        seeded = [f"seed={seed}"] if seed is not None else []
        subdir = f"0/seed{seed}" if seed is not None else "0"
        runs.append(RunJob(trial.number, seed, overrides + seeded + [f"hydra.sweep.dir={folder}",
                                                                      f"hydra.sweep.subdir={subdir}"], folder / subdir))
    judged = [judge_run(run.seed, run.run_dir, run.job_return, plan.objectives, run.launch_error, plan.from_return)
              for run in run_all(dispatcher, runs)]
    maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
    state, values, attrs = combine(judged, plan.objectives, maximize, settings.seed_statistic, folder / "0")
    for key, value in {**attrs, "overrides": overrides}.items():
        trial.set_user_attr(key, value)
    study.tell(trial, values=values, state=state)
    write_study_file(folder, {"study_name": name, "storage": plan.storage_url, "objectives": plan.objectives,
                              "directions": [d.name.lower() for d in study.directions], "seeds": settings.seeds})
    _tables.write_tables(folder, study, [], plan.objectives, settings.seeds)
    log.info("baseline: %s%s", state.name, f" {values}" if values else f" ({attrs.get('reason')})")


def baseline_folder(sweep_dir: Path, name: str) -> Path:
    """outputs/sweeps/<baseline>/<time> beside outputs/sweeps/<sweep>/<time>; inside a sweep folder elsewhere."""
    if sweep_dir.parent.parent.name == "sweeps":
        return sweep_dir.parent.parent / name / sweep_dir.name
    return sweep_dir / name


# ----------------------------------------------------------------------------------------------- confirm


def confirm_best(sweep: OptunaSweep, plan: Plan, dispatcher: Dispatcher) -> None:
    settings = sweep.settings
    if not settings.confirm_seeds:
        return
    study = plan.study
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.RUNNING for t in trials):  # enqueued trials past n_trials never run
        log.info("confirmation left to the worker that ends last: trials are still running")
        return
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = sorted(complete, key=study_rank(study), reverse=True)[: settings.confirm_top_k]
    confirmed = dict(study.user_attrs.get(CONFIRM_ATTR) or {})
    todo = [t for t in best if confirmed.get(str(t.number), {}).get("seeds") != settings.confirm_seeds]
    if not todo:
        return
    objective = plan.objectives[0]
    started = time.monotonic()
    runs = [RunJob(t.number, seed, [o for o in t.user_attrs.get("overrides", []) if not o.startswith("seed=")] + [
        f"seed={seed}", f"hydra.sweep.subdir=confirm/{t.number}/seed{seed}"],
        plan.sweep_dir / "confirm" / str(t.number) / f"seed{seed}") for t in todo for seed in settings.confirm_seeds]
    log.info("confirming trial(s) %s on fresh seeds %s", ", ".join(str(t.number) for t in todo), settings.confirm_seeds)
    rows = []
    for run in run_all(dispatcher, runs):
        outcome = judge_run(run.seed, run.run_dir, run.job_return, plan.objectives, run.launch_error, plan.from_return)
        rows.append({"trial": run.trial_number, "seed": run.seed, "state": outcome.state.name,
                     "reason": outcome.reason, "run_dir": str(outcome.run_dir), "seconds": outcome.metrics.get("seconds"),
                     objective: outcome.values[0] if outcome.values else None, **record.split_metrics(outcome.metrics)})
    table = pd.DataFrame(rows)
    for number in sorted({run.trial_number for run in runs}):
        mine = table[(table["trial"] == number) & (table["state"] == "COMPLETE")]
        confirmed[str(number)] = {
            "seeds": settings.confirm_seeds, "metric": test_twin(objective),
            "val": [float(v) for v in mine.get(objective, [])],
            "test": [float(v) for v in mine.get(test_twin(objective), [])],
            "failed": int((table["trial"] == number).sum() - len(mine)),
        }
    study.set_user_attr(CONFIRM_ATTR, confirmed)
    write_csv_atomic(plan.sweep_dir / CONFIRM_FILE, _with_earlier_rows(plan.sweep_dir / CONFIRM_FILE, table))
    log.info("confirmation took %.0f s", time.monotonic() - started)


def _with_earlier_rows(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    """This confirmation's rows after the rows of trials an earlier command confirmed into the same folder."""
    try:
        earlier = pd.read_csv(path)
    except (OSError, ValueError):
        return table
    return pd.concat([earlier[~earlier["trial"].isin(table["trial"])], table], ignore_index=True)
