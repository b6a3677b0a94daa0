"""A Hydra app in the shape of the official hydra-optuna-sweeper's examples: the objective is what it returns.

    sphere.py -m                                 x^2 + y^2 (conf/config.yaml: sampler group, max_failure_rate)
    sphere.py -m --config-name multi_objective   two objectives returned as a tuple, NSGA-II, a direction list
    sphere.py -m --config-name custom_space      a custom_search_space function adds z and a new key +w
    sphere.py -m --config-name hydra11           Hydra 1.1's search_space format

It writes no aesweep run record: the sweeper optimises the returned value(s), as the official plugin does.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | tuple[float, float]:
    if cfg.get("error"):
        raise RuntimeError("told to fail")
    x, y = float(cfg.x), float(cfg.y)
    if cfg.get("objectives", 1) == 2:
        return x**2 + y**2, (x - 2) ** 2 + (y - 1) ** 2
    return float(cfg.get("w", 0.0)) ** 2 + x**2 + y**2 + float(cfg.get("z", 0.0)) ** 2


def configure(cfg: DictConfig, trial) -> None:
    """custom_search_space: z within max_z_difference_from_x of x, and a parameter the config lacks (+w)."""
    x = trial.params["x"]
    trial.suggest_float("z", x - cfg.max_z_difference_from_x, x + cfg.max_z_difference_from_x)
    trial.suggest_float("+w", 0.0, 1.0)


def configure_until_trial_1(cfg: DictConfig, trial) -> None:
    """custom_search_space that raises when asked for trial 1, as a user's function with a bug would."""
    if trial.number == 1:
        raise ValueError("no space for trial 1")
    configure(cfg, trial)


if __name__ == "__main__":
    main()
