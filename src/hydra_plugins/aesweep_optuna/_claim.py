"""A trial this worker claimed: its configuration and one run per seed, and what tells each run its trial."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.types import Quote, QuotedString
from optuna.trial import TrialState

from aesweep.trial import PRUNED_ATTR

from ._dispatch import RunJob
from ._outcome import RunOutcome
from ._plan import Plan
from ._settings import SweepSettings


@dataclass
class Claim:
    """A trial this worker asked for: its configuration, its runs (one per seed) and their verdicts so far."""

    trial: optuna.Trial
    overrides: list[str]  # the task overrides that reproduce the configuration (recorded, and best.yaml)
    runs: list[RunJob]
    trial_dir: Path
    outcomes: list[RunOutcome] = field(default_factory=list)
    skipped: int = 0
    busy: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each of its launched runs

    @property
    def done(self) -> bool:
        return len(self.outcomes) + self.skipped == len(self.runs)

    def finished(self, outcome: RunOutcome, run: RunJob) -> None:
        self.outcomes.append(outcome)
        self.busy.append((run.started, run.ended))

    def skip(self, run: RunJob) -> None:
        self.skipped += 1

    def stopped(self, storage: Any) -> bool:
        """Whether a run of this trial already failed, or was pruned (it marks the trial for its siblings)."""
        if any(outcome.state == TrialState.FAIL for outcome in self.outcomes):
            return True
        return bool(storage.get_trial_system_attrs(self.trial._trial_id).get(PRUNED_ATTR))


def trial_link(plan: Plan, trial: optuna.Trial, settings: SweepSettings) -> list[str]:
    """What tells each job its trial (aesweep.trial.TrialReporter reads it)."""
    link = [
        f"++trial.study_name={_quoted(plan.study.study_name)}",
        f"++trial.storage={_quoted(plan.storage_url)}",
        f"++trial.trial_id={trial._trial_id}",
        f"++trial.trial_number={trial.number}",
    ]
    if len(plan.objectives) == 1 and not plan.from_return:
        link.append(f"++trial.report={_quoted(plan.objectives[0])}")
    if settings.seeds is not None:
        link += [f"++trial.seeds=[{','.join(map(str, settings.seeds))}]",
                 f"++trial.statistic={settings.seed_statistic}"]
    return link


def seed_overrides(trial_number: int, seed: int | None) -> list[str]:
    """The run's seed and folder: the trial number (unique even when workers share a sweep folder), and
    below it one folder per seed."""
    if seed is None:
        return [f"hydra.sweep.subdir={trial_number}"]
    return [f"seed={seed}", f"hydra.sweep.subdir={trial_number}/seed{seed}"]


def _quoted(text: str) -> str:
    return QuotedString(text=text, quote=Quote.single).with_quotes()
