"""The Hydra ``Sweeper`` plugin class; the work happens in ``_sweep`` (imported on first use)."""

from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class AesweepOptunaSweeper(Sweeper):
    """Searches the composed configs with Optuna: ask a trial -> launch its runs -> tell, n_jobs runs in flight."""

    def __init__(self, **settings: Any) -> None:
        from ._sweep import OptunaSweep

        self._sweep = OptunaSweep(**settings)
        self.hydra_context: Optional[HydraContext] = None
        self.config: Optional[DictConfig] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self._sweep.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = self._sweep.launcher

    def sweep(self, arguments: List[str]) -> Any:
        return self._sweep.run(arguments)
