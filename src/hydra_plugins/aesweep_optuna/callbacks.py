"""The Hydra callback the sweeper's config brings with it (hydra.callbacks.aesweep_keep_sweeper)."""

from typing import Any

from hydra.experimental.callback import Callback


class KeepChosenSweeper(Callback):
    """Before Hydra instantiates the sweeper: a sweep file that chose `hydra/sweeper: aesweep_optuna` but names
    the official plugin's class in `hydra.sweeper._target_` (lightning-hydra-template's hparams_search does) gets
    this sweeper, as its defaults list asked."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from .config import keep_chosen_sweeper

        keep_chosen_sweeper(config)
