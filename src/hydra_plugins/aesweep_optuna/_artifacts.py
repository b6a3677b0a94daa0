"""What optuna-dashboard shows of a sweep beyond Optuna's own records: each trial's files, and the study's note.

Files  when a trial is recorded, its runs' ``confusion.png``, ``reconstructions.png``, ``metrics.json`` and
       ``history.csv`` are uploaded as Optuna artifacts into a ``FileSystemArtifactStore`` beside the storage
       (``aesweep.dashboard.artifact_dir``), so clicking a trial in the dashboard shows its digits. A trial run
       over several seeds uploads each seed's files, named ``seed<s>-<file>``. Uploading happens before the
       trial is told (Optuna refuses attributes on a finished trial); a failed upload is a warning, never a
       failed trial.
Note   the study's note (Markdown, optuna-dashboard's ``save_note``) and user attributes say the command that
       ran the sweep, its budget and the baseline's value.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from omegaconf import DictConfig, OmegaConf

from aesweep import record
from aesweep.dashboard import artifact_dir
from aesweep.errors import one_line

from . import _tables
from ._outcome import RunOutcome

if TYPE_CHECKING:
    from ._plan import Plan
    from ._settings import SweepSettings

log = logging.getLogger(__name__)

# What a run leaves that the dashboard can show (pictures) or offer for download (the record, the curves).
RUN_FILES = ("confusion.png", "reconstructions.png", record.RECORD_FILE, "history.csv")
# Study user attributes the dashboard lists beside the note.
COMMAND_ATTR, BUDGET_ATTR, BASELINE_ATTR = "command", "budget", "baseline"
# train.py's budget of one trial, shown when the config has them (other apps' configs show trials alone).
BUDGET_KEYS = ("data.subset", "trainer.epochs")


def upload_run_files(trial: optuna.Trial, outcomes: Sequence[RunOutcome], storage_url: str, launch_dir: Path) -> int:
    """Upload each run's files that exist to the trial; returns how many were uploaded."""
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    uploaded = 0
    try:
        folder = artifact_dir(storage_url, launch_dir)
        folder.mkdir(parents=True, exist_ok=True)
        store = FileSystemArtifactStore(folder)
        with tempfile.TemporaryDirectory() as renamed, warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for outcome in outcomes:
                for name in RUN_FILES:
                    path = Path(outcome.run_dir) / name
                    if not path.is_file():
                        continue  # a pruned run has no pictures, a failed one maybe nothing
                    if outcome.seed is not None:  # the dashboard shows a file's name, not its folder
                        path = Path(shutil.copyfile(path, Path(renamed) / f"seed{outcome.seed}-{name}"))
                    upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)
                    uploaded += 1
    except Exception as error:  # the trial's result matters more than its pictures
        log.warning("trial %d: its files were not uploaded for the dashboard: %s", trial.number, one_line(error))
    return uploaded


def describe_study(plan: Plan, config: DictConfig, settings: SweepSettings) -> None:
    """Write the sweep's command, budget and baseline into the study's note and user attributes."""
    command = sweep_command(config)
    budget = budget_text(settings, {key: OmegaConf.select(config, key, default=None) for key in BUDGET_KEYS
                                    if OmegaConf.select(config, key, default=None) is not None})
    baseline = _tables.baseline_line(plan.storage, plan.baseline_study, plan.study, plan.objectives,
                                     plan.measure_baseline)
    directions = ", ".join(f"{o} ({d.name.lower()})" for o, d in zip(plan.objectives, plan.study.directions))
    try:
        for key, value in ((COMMAND_ATTR, command), (BUDGET_ATTR, budget), (BASELINE_ATTR, baseline)):
            plan.study.set_user_attr(key, value)
        _save_note(plan.study, "\n\n".join([
            f"**Command** `{command}`", f"**Objective** {directions}", f"**Budget** {budget}",
            f"**Baseline** {baseline}", f"**Sweep folder** `{plan.sweep_dir}`"]))
    except Exception as error:  # a description is not worth stopping a sweep for
        log.warning("study '%s': its note was not written: %s", plan.study.study_name, one_line(error))


def sweep_command(config: DictConfig) -> str:
    """The command line that ran this sweep, as Hydra recorded its overrides."""
    hydra_overrides = [o for o in config.hydra.overrides.hydra if o != "hydra.mode=MULTIRUN"]  # -m says that
    overrides = hydra_overrides + list(config.hydra.overrides.task)
    return shlex.join(["python", Path(sys.argv[0]).name, "-m", *overrides])


def budget_text(settings: SweepSettings, per_trial: dict[str, Any]) -> str:
    """``20 trials, timeout 600 s, seeds [0, 1, 2] (mean); each data.subset=512 trainer.epochs=2``."""
    parts = [f"{settings.n_trials} trials"]
    if settings.timeout:
        parts.append(f"timeout {settings.timeout:g} s")
    if settings.seeds is not None:
        parts.append(f"seeds {settings.seeds} ({settings.seed_statistic})")
    each = " ".join(f"{key}={value}" for key, value in per_trial.items())
    return ", ".join(parts) + (f"; each {each}" if each else "")


def _save_note(study: optuna.Study, body: str) -> None:
    try:
        from optuna_dashboard import save_note
    except ImportError:  # the user attributes carry the same; the note needs the dashboard extra
        return
    save_note(study, body)

