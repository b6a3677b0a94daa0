"""The sampler and pruner option groups: ``hydra/sweeper/sampler=random``, ``override /hydra/sweeper/pruner: median``.

The official hydra-optuna-sweeper's sampler group and option names (tpe, random, cmaes, nsgaii, qmc, grid, gp),
so its users' ``override /hydra/sweeper/sampler: ...`` lines work unchanged, plus ``bruteforce`` and the pruners,
which it does not have. Each option is a typed config whose fields are the class's keyword arguments with
Optuna's defaults (tests/unit/test_presets.py holds them against the installed Optuna), so a misspelled key is
refused. Arguments whose default is not a plain value (a callable, another sampler) are null here.
This module is imported by Hydra's plugin scan; it must not import Optuna.
"""

from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class TPESamplerConf:
    _target_: str = "optuna.samplers.TPESampler"
    consider_prior: Optional[bool] = None
    prior_weight: Optional[float] = None
    consider_magic_clip: Optional[bool] = None
    consider_endpoints: Optional[bool] = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    gamma: Any = None
    weights: Any = None
    seed: Optional[int] = None
    multivariate: Optional[bool] = None
    group: bool = False
    warn_independent_sampling: Optional[bool] = None
    constant_liar: bool = True
    constraints_func: Any = None

@dataclass
class RandomSamplerConf:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None

@dataclass
class CmaEsSamplerConf:
    _target_: str = "optuna.samplers.CmaEsSampler"
    x0: Any = None
    sigma0: Optional[float] = None
    n_startup_trials: int = 1
    independent_sampler: Any = None
    warn_independent_sampling: bool = True
    seed: Optional[int] = None
    consider_pruned_trials: bool = False
    restart_strategy: Optional[str] = None
    popsize: Optional[int] = None
    inc_popsize: int = -1
    use_separable_cma: bool = False
    with_margin: bool = False
    lr_adapt: bool = False
    source_trials: Any = None

@dataclass
class NSGAIISamplerConf:
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation: Any = None
    mutation_prob: Optional[float] = None
    crossover: Any = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5
    seed: Optional[int] = None
    constraints_func: Any = None
    elite_population_selection_strategy: Any = None
    child_generation_strategy: Any = None
    after_trial_strategy: Any = None

@dataclass
class QMCSamplerConf:
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"
    scramble: bool = False
    seed: Optional[int] = None
    independent_sampler: Any = None
    warn_asynchronous_seeding: bool = True
    warn_independent_sampling: bool = True

@dataclass
class GridSamplerConf:
    _target_: str = "optuna.samplers.GridSampler"
    seed: Optional[int] = None

@dataclass
class GPSamplerConf:
    _target_: str = "optuna.samplers.GPSampler"
    seed: Optional[int] = None
    independent_sampler: Any = None
    n_startup_trials: int = 10
    deterministic_objective: bool = False
    constraints_func: Any = None
    warn_independent_sampling: bool = True

@dataclass
class BruteForceSamplerConf:
    _target_: str = "optuna.samplers.BruteForceSampler"
    seed: Optional[int] = None
    avoid_premature_stop: bool = False

@dataclass
class NopPrunerConf:
    _target_: str = "optuna.pruners.NopPruner"

@dataclass
class MedianPrunerConf:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1

@dataclass
class PercentilePrunerConf:
    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: Optional[float] = None  # required
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1

@dataclass
class SuccessiveHalvingPrunerConf:
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0

@dataclass
class HyperbandPrunerConf:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3
    bootstrap_count: int = 0

@dataclass
class ThresholdPrunerConf:
    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: Optional[float] = None
    upper: Optional[float] = None
    n_warmup_steps: int = 0
    interval_steps: int = 1

@dataclass
class PatientPrunerConf:
    _target_: str = "optuna.pruners.PatientPruner"
    wrapped_pruner: Any = None  # required: a pruner config ({_target_: ...})
    patience: Optional[int] = None  # required
    min_delta: float = 0.0

@dataclass
class WilcoxonPrunerConf:
    _target_: str = "optuna.pruners.WilcoxonPruner"
    p_threshold: float = 0.1
    n_startup_steps: int = 2


SAMPLERS = {"tpe": TPESamplerConf, "random": RandomSamplerConf, "cmaes": CmaEsSamplerConf, "nsgaii": NSGAIISamplerConf,
            "qmc": QMCSamplerConf, "grid": GridSamplerConf, "gp": GPSamplerConf, "bruteforce": BruteForceSamplerConf}
PRUNERS = {"nop": NopPrunerConf, "median": MedianPrunerConf, "percentile": PercentilePrunerConf,
           "successive_halving": SuccessiveHalvingPrunerConf, "hyperband": HyperbandPrunerConf,
           "threshold": ThresholdPrunerConf, "patient": PatientPrunerConf, "wilcoxon": WilcoxonPrunerConf}

for _name, _node in SAMPLERS.items():
    ConfigStore.instance().store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="aesweep")
for _name, _node in PRUNERS.items():
    ConfigStore.instance().store(group="hydra/sweeper/pruner", name=_name, node=_node, provider="aesweep")
