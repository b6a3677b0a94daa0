"""A Hydra app whose task does nothing but return a number: what `aesweep bench overhead` sweeps, so that a
trial's wall time is the sweeper's own (claiming, sampling, launching, recording, tables) and Hydra's."""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="noop_conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    return -((cfg.x - 0.3) ** 2)


if __name__ == "__main__":
    main()
