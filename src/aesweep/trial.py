"""The link between a sweep and its jobs (the `trial` config node): report each epoch's metric to the Optuna
trial, stop when pruned.

The sweeper (``hydra_plugins.aesweep_optuna``) fills ``trial.study_name``, ``trial.storage``,
``trial.trial_id``, ``trial.trial_number`` and ``trial.report`` in every job it launches. The
train loop builds a ``TrialReporter`` from that node and calls ``report(epoch, metrics)`` after
each validation; ``True`` means the pruner wants the trial stopped. The pruner is configured once, in
the sweep file: the sweeper stores its config with the study (``PRUNER_ATTR``) and every job builds the
same one from there. Optuna is imported lazily: a single run (no sweep) never pays for it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aesweep import record
from aesweep.errors import ConfigError, one_line
from aesweep.storage import RDB_OUTAGE_S, open_storage

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

# Study user attribute holding the pruner's config ({_target_: ..., args}); the sweeper writes it,
# jobs build the same pruner from it, so the pruner is configured in one place (the sweep file).
PRUNER_ATTR = "aesweep.pruner"
# Trial system attributes of a trial run once per seed: each run's curve so far, and which run was pruned.
CURVE_ATTR = "aesweep:curve:seed"  # + the seed: {epoch: value}
PRUNED_ATTR = "aesweep:pruned"

# How a trial's runs over several seeds make one value (hydra.sweeper.seed_statistic).
STATISTICS = ("mean", "min", "mean-std")

# Trial user attributes the sweeper records when a trial's runs are done: the seconds they held a slot in all,
# when the first began and when the last ended (unix time, from the runs' folders).
BUSY_ATTR, STARTED_ATTR, ENDED_ATTR = "busy_seconds", "runs_started", "runs_ended"


def slot_use(trials: Sequence[optuna.trial.FrozenTrial], slots: int) -> tuple[float, float] | None:
    """How busy ``slots`` slots were with these trials' runs: (seconds the runs held a slot / (slots x span), span),
    the span from the first run's start to the last run's end. None when no trial has its runs' times."""
    timed = [t for t in trials if STARTED_ATTR in t.user_attrs]
    if not timed:
        return None
    span = max(t.user_attrs[ENDED_ATTR] for t in timed) - min(t.user_attrs[STARTED_ATTR] for t in timed)
    if span <= 0:
        return None
    return sum(t.user_attrs[BUSY_ATTR] for t in timed) / (slots * span), span


def seed_statistic(values: list[float], name: str, maximize: bool = True) -> float:
    """A trial's value over its seeds: `mean`; `min`, the worst seed (the lowest when maximising, the highest when
    minimising); `mean-std`, the mean less the sample standard deviation (plus it when minimising; 0 for one seed)."""
    if not values:
        raise ValueError("no values to summarise")
    mean = sum(values) / len(values)
    if name == "mean":
        return mean
    if name == "min":
        return min(values) if maximize else max(values)
    if name == "mean-std":
        spread = 0.0 if len(values) < 2 else (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
        return mean - spread if maximize else mean + spread
    raise ValueError(f"unknown statistic {name!r}: one of {', '.join(STATISTICS)}")

def pruner_from_config(pruner_cfg: Mapping[str, Any] | None) -> optuna.pruners.BasePruner:
    """Build a pruner from ``{_target_: optuna.pruners.X, ...}``; ``None`` means never prune."""
    import optuna
    from hydra.utils import instantiate

    if not pruner_cfg:
        return optuna.pruners.NopPruner()
    return instantiate(dict(pruner_cfg))


PRUNER_FORMS = "null or an optuna.pruners class with its arguments, e.g. {_target_: optuna.pruners.MedianPruner}"


def checked_pruner(pruner_cfg: Mapping[str, Any] | None, key: str) -> optuna.pruners.BasePruner:
    """`pruner_from_config`, with a config that builds no pruner refused in one line naming `key`."""
    import optuna

    if pruner_cfg is not None and not isinstance(pruner_cfg, Mapping):  # hydra.sweeper.pruner=median
        raise ConfigError(key, pruner_cfg, PRUNER_FORMS)
    target = (pruner_cfg or {}).get("_target_")
    try:
        pruner = pruner_from_config(pruner_cfg)
    except Exception as error:  # Hydra wraps the import or argument error; its cause says what is wrong
        raise ConfigError(key, target, f"{PRUNER_FORMS} ({one_line(error.__cause__ or error)})") from None
    if not isinstance(pruner, optuna.pruners.BasePruner):
        raise ConfigError(key, target, PRUNER_FORMS)
    return pruner


class TrialReporter:
    """Reports one metric per epoch to a running Optuna trial and relays the pruner's verdict.

    A trial run once per seed (``trial.seeds``) has one run per seed reporting to it. Each run records its
    own curve in the trial; the value reported at an epoch is the trial's statistic over the seeds that
    have reached that epoch so far (each run overwrites it with what it sees). The pruner judges an epoch
    once every seed has reached it, so it compares the statistic the trials are ranked by with that of the
    others: judged on the seeds that happen to get there first, one noisy seed would stop configurations
    whose mean is fine. When it prunes, the trial's other runs stop at their next epoch.
    """

    def __init__(self, trial: optuna.Trial, metric: str, prunable: bool, seed: int | None = None,
                 statistic: str | None = None, seeds: int = 1) -> None:
        self.trial = trial
        self.metric = metric
        self.prunable = prunable
        self.seed, self.statistic, self.seeds = seed, statistic, seeds
        self.curve: dict[str, float] = {}

    @classmethod
    def from_config(cls, trial_cfg: Mapping[str, Any] | None, seed: int | None = None) -> TrialReporter | None:
        """The reporter for the trial named in ``cfg.trial`` (``seed``: the run's own); ``None`` outside a sweep."""
        if trial_cfg is None or trial_cfg.get("study_name") is None:
            return None
        import optuna

        storage = open_storage(str(trial_cfg["storage"]), wait_s=RDB_OUTAGE_S)  # a job may start during a restart
        study_name = str(trial_cfg["study_name"])
        try:
            study_id = storage.get_study_id_from_name(study_name)
        except KeyError:
            raise ConfigError("trial.study_name", study_name, f"a study in {trial_cfg['storage']}") from None
        pruner_cfg = storage.get_study_user_attrs(study_id).get(PRUNER_ATTR)
        study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner_from_config(pruner_cfg))
        trial_id = int(trial_cfg["trial_id"])
        try:
            number = storage.get_trial(trial_id).number
        except KeyError:
            raise ConfigError("trial.trial_id", trial_id, f"a trial of study {study_name!r}") from None
        if trial_cfg.get("trial_number") is not None and number != int(trial_cfg["trial_number"]):
            raise ConfigError("trial.trial_number", trial_cfg["trial_number"], f"{number} (trial_id {trial_id})")
        trial = optuna.trial.Trial(study, trial_id)
        statistic = trial_cfg.get("statistic") if trial_cfg.get("seeds") else None
        return cls(trial, str(trial_cfg.get("report") or record.DEFAULT_OBJECTIVE), prunable=len(study.directions) == 1,
                   seed=seed if statistic else None, statistic=statistic, seeds=len(trial_cfg.get("seeds") or []))

    @property
    def number(self) -> int:
        return self.trial.number

    def report(self, epoch: int, metrics: Mapping[str, Any], last: bool = False) -> bool:
        """Report ``metrics[report]`` at step ``epoch``; True when the trial should stop now.

        After the ``last`` epoch the value is reported but the pruner is not asked: the training is
        paid for, and a finished trial tells the sampler more as COMPLETE than as PRUNED (a pruner
        whose rung or warm-up ends at the last epoch would otherwise throw finished trials away).
        Multi-objective studies are never pruned (Optuna cannot). A NaN/inf value is not reported:
        divergence is the train loop's call, not the pruner's. If the sweeper already closed the
        trial (it was declared stale), the job stops: nobody would record its result.
        """
        if not self.prunable:
            return False
        value = record.lookup(metrics, self.metric)
        if value is None:
            raise ConfigError("trial.report", self.metric, f"one of the reported metrics {record.paths(metrics)}")
        value = float(value)
        if not math.isfinite(value):
            return False
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            if self.statistic is None:
                self.trial.report(value, step=int(epoch))
                return not last and self.trial.should_prune()
            reached = self._report_over_seeds(int(epoch), value)
            if reached is None:
                return True
            prune = not last and reached == self.seeds and self._prune_over_seeds(int(epoch))
            if prune:
                self._storage.set_trial_system_attr(self.trial._trial_id, PRUNED_ATTR, f"seed {self.seed}, epoch {epoch}")
            return prune
        except UpdateFinishedTrialError:
            log.warning("trial %d was already closed by the sweeper; stopping this job", self.trial.number)
            return True

    @property
    def _storage(self):
        return self.trial.study._storage

    def _prune_over_seeds(self, epoch: int) -> bool:
        """The pruner's verdict on the trial as it stands at this epoch (a sibling run may be further on)."""
        import copy

        frozen = copy.deepcopy(self._storage.get_trial(self.trial._trial_id))
        frozen.intermediate_values = {step: v for step, v in frozen.intermediate_values.items() if step <= epoch}
        return self.trial.study.pruner.prune(self.trial.study, frozen)

    def _report_over_seeds(self, epoch: int, value: float) -> int | None:
        """Record this run's value, report the statistic over the seeds at this epoch; how many seeds have
        reached it, or None when a sibling run was pruned."""
        trial_id = self.trial._trial_id
        self.curve[str(epoch)] = value
        self._storage.set_trial_system_attr(trial_id, f"{CURVE_ATTR}{self.seed}", dict(self.curve))
        attrs = self._storage.get_trial_system_attrs(trial_id)
        if attrs.get(PRUNED_ATTR):
            log.info("trial %d: another seed's run was pruned (%s); stopping", self.trial.number, attrs[PRUNED_ATTR])
            return None
        reached = [curve[str(epoch)] for key, curve in attrs.items()
                   if key.startswith(CURVE_ATTR) and isinstance(curve, dict) and str(epoch) in curve]
        maximize = self.trial.study.direction.name == "MAXIMIZE"
        self._storage.set_trial_intermediate_value(trial_id, epoch, seed_statistic(reached, self.statistic, maximize))
        return len(reached)
