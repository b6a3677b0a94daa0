"""The sweeper's config schema, registered as ``hydra/sweeper: aesweep_optuna``.

Keys shared with the official hydra-optuna-sweeper keep its names and meaning (sampler, direction,
study_name, storage, n_trials, n_jobs, params); the rest are aesweep's additions.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class AesweepOptunaSweeperConf:
    _target_: str = "hydra_plugins.aesweep_optuna.optuna_sweeper.AesweepOptunaSweeper"
    # The sweeper builds sampler and pruner itself (GridSampler's search space, TPE's constant_liar).
    _recursive_: bool = False

    # Any optuna.samplers class with its arguments. For TPESampler the sweeper turns on
    # constant_liar unless told otherwise; GridSampler gets its search_space from `params`.
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None})
    # Any optuna.pruners class with its arguments, or null (never prune). Jobs report the
    # objective after every epoch through aesweep.trial.TrialReporter.
    pruner: Any = None
    # maximize | minimize, or a list (one per objective) for a multi-objective study.
    direction: Any = "maximize"
    # Metric path(s) read from each run's metrics.json: val.mapped_acc, [val.mapped_acc, params], ...
    objective: Any = "val.mapped_acc"
    # null: the sweep file's name (hydra:runtime.choices.sweep), else the job name.
    study_name: Optional[str] = None
    # null: <launch dir>/outputs/optuna/journal.log (Optuna journal file, shared by all sweeps).
    # Also a journal file path, sqlite:///path.db or postgresql://user:pass@host:port/db.
    storage: Optional[str] = None
    # Total trials of the study, counting every state (finished, pruned, failed) and every worker.
    n_trials: int = 20
    # Trials in flight at once, launched as one batch through hydra/launcher.
    n_jobs: int = 1
    # Seconds after which this command starts no new trial (running ones finish); null: no limit.
    timeout: Optional[float] = None
    # Search space in Hydra's override grammar: choice(...), a,b,c, range(...), interval(...),
    # tag(log, interval(...)), tag(int, interval(...)); anything else is a fixed override.
    params: Optional[Dict[str, Any]] = None
    # Study (in the same storage) whose mean objective is "the baseline" in the summary; null: none.
    baseline_study: Optional[str] = "baseline"
    # Seconds between heartbeats written to each running trial.
    heartbeat_interval: float = 30.0
    # A RUNNING trial owned by a process this machine cannot check (another host) is failed
    # once its last heartbeat is this many seconds old.
    stale_after: float = 600.0
    # Rows of the ranking printed at the end.
    top_k: int = 10


ConfigStore.instance().store(
    group="hydra/sweeper", name="aesweep_optuna", node=AesweepOptunaSweeperConf, provider="aesweep"
)
