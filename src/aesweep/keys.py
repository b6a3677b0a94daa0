"""Dotted config keys (`trainer.epochs`): whether a composed config has one, and every key it has (for the
"did you mean" of an error line). Shared by the command-line check and the sweeper's search-space check."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def node_exists(cfg: DictConfig, key: str) -> bool:
    """Whether `key` (dotted) names a node in `cfg`, whatever its value (even ``???``)."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None, throw_on_resolution_failure=False) if parent_key else cfg
    return isinstance(parent, DictConfig) and leaf in parent.keys()


def dotted_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Every dotted key under `node`, of mappings and of values alike (`trainer`, `trainer.epochs`, ...)."""
    keys = []
    for key in node.keys():
        child = node._get_node(key)
        keys.append(f"{prefix}{key}")
        if isinstance(child, DictConfig):
            keys += dotted_keys(child, f"{prefix}{key}.")
    return keys
