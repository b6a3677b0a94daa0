"""The sweeper's config schema, registered as ``hydra/sweeper: aesweep_optuna``.

Keys shared with the official hydra-optuna-sweeper keep its names and meaning (sampler, direction,
study_name, storage, n_trials, n_jobs, params); the rest are aesweep's additions.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class ConfirmConf:
    # Fresh seeds the best configurations are re-run on once the search ends; null or []: no confirmation.
    # They must differ from `seeds` (and from the config's own seed when `seeds` is null).
    seeds: Optional[List[int]] = None
    # How many of the best COMPLETE trials (by the search's value) are confirmed.
    top_k: int = 1


@dataclass
class AesweepOptunaSweeperConf:
    _target_: str = "hydra_plugins.aesweep_optuna.optuna_sweeper.AesweepOptunaSweeper"
    # The sampler and pruner groups (presets.py) are empty until chosen (hydra/sweeper/sampler=random), and are
    # merged after the fields below: a chosen preset replaces the default sampler, a sweep file's keys refine it.
    defaults: List[Any] = field(default_factory=lambda: [
        "_self_", {"sampler": None}, {"pruner": None},
        # keep this sweeper when a file chose it but names the official class (see KeepChosenSweeper)
        {"/hydra/callbacks@_global_.hydra.callbacks.aesweep_keep_sweeper": "aesweep_keep_sweeper"},
    ])
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
    # Metric path(s) read from each run's record (metrics.json): val.mapped_acc, [val.mapped_acc, params], ...
    # null: the app's own objective (train.py's: val.mapped_acc), or, for an app that names none, the value(s)
    # its task function returns, as the official hydra-optuna-sweeper optimises.
    objective: Any = None
    # null: the sweep file's name (hydra:runtime.choices.sweep), else the job name.
    study_name: Optional[str] = None
    # null: <launch dir>/outputs/optuna/journal.log (Optuna journal file, shared by all sweeps).
    # Also a journal file path, sqlite:///path.db or postgresql://user:pass@host:port/db.
    storage: Optional[str] = None
    # Total trials of the study, counting every state (finished, pruned, failed) and every worker.
    n_trials: int = 20
    # Runs in flight at once through hydra/launcher (a trial over 3 seeds is 3 runs).
    n_jobs: int = 1
    # async: a new run starts the moment a slot frees; batch: n_jobs trials at a time, the next batch when
    # the slowest of them ends (what the official hydra-optuna-sweeper does; kept to measure against).
    dispatch: str = "async"
    # Seeds every trial's configuration runs on (each run sets `seed=<s>`); null: one run with the config's seed.
    seeds: Optional[List[int]] = None
    # A trial's value over its seeds: mean | min | mean-std (the mean less the sample std).
    seed_statistic: str = "mean"
    # Re-run the best configurations on fresh seeds when the search ends: confirm.csv, and the figure beside
    # the search's in best.yaml, the summary and `aesweep compare`.
    confirm: ConfirmConf = field(default_factory=ConfirmConf)
    # Seconds after which this command starts no new trial (running ones finish); null: no limit.
    timeout: Optional[float] = None
    # Search space in Hydra's override grammar: choice(...), a,b,c, range(...), interval(...),
    # tag(log, interval(...)), tag(int, interval(...)); anything else is a fixed override.
    params: Optional[Dict[str, Any]] = None
    # A dotted path to a function(config, trial) called after `params` are suggested, which may suggest more
    # (conditional or define-by-run spaces); each parameter it suggests, named by its override key, is set.
    custom_search_space: Optional[str] = None
    # Hydra 1.1's format, still accepted: {name: {type: float|int|categorical, low, high, log, step, choices}};
    # converted to `params` with one deprecation line. Not together with params.
    search_space: Optional[Dict[str, Any]] = None
    # Stop the sweep (exit 1) once more than this fraction of the trials it finished failed (0.0: at the first
    # failure, as the official plugin's default); null: never, failed trials are recorded and the sweep goes on.
    max_failure_rate: Optional[float] = None
    # Study (in the same storage) whose mean objective is "the baseline" in the summary; null: none.
    baseline_study: Optional[str] = "baseline"
    # The configuration the sweep is compared with (e.g. the blog's recipe: [model=blog, loss=mse, ...]) on the
    # sweep's own budget: measured once over the sweep's seeds into baseline_study when the storage has none.
    baseline_overrides: Optional[List[str]] = None
    # Seconds between heartbeats written to each running trial.
    heartbeat_interval: float = 30.0
    # A RUNNING trial owned by a process this machine cannot check (another host) is failed
    # once its last heartbeat is this many seconds old.
    stale_after: float = 600.0
    # Rows of the ranking printed at the end.
    top_k: int = 10
    # The live progress line on stderr (trials by state, best so far, ETA): auto = only on a terminal | true | false.
    progress: Any = "auto"


ConfigStore.instance().store(
    group="hydra/sweeper", name="aesweep_optuna", node=AesweepOptunaSweeperConf, provider="aesweep"
)


# The official plugin's class, which some sweep files name outright (lightning-hydra-template's hparams_search
# does): where such a file selected `hydra/sweeper: aesweep_optuna`, that line must not undo the choice.
OFFICIAL_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


@dataclass
class KeepChosenSweeperConf:
    _target_: str = "hydra_plugins.aesweep_optuna.callbacks.KeepChosenSweeper"


ConfigStore.instance().store(group="hydra/callbacks", name="aesweep_keep_sweeper", node=KeepChosenSweeperConf,
                             provider="aesweep")


def keep_chosen_sweeper(config: Any) -> None:
    """Point hydra.sweeper._target_ back at this sweeper when the sweep file chose it but names the official
    class in `_target_` (call before Hydra instantiates the sweeper: a Hydra callback's on_multirun_start)."""
    from omegaconf import read_write

    sweeper = config.hydra.get("sweeper")
    chosen = config.hydra.runtime.choices.get("hydra/sweeper")
    if chosen == "aesweep_optuna" and sweeper is not None and sweeper.get("_target_") == OFFICIAL_SWEEPER:
        with read_write(config.hydra.sweeper):
            config.hydra.sweeper._target_ = AesweepOptunaSweeperConf._target_
