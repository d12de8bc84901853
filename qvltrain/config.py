"""The one place Hydra meets qvltrain: the root config schema and its conversion to typed objects.

Every component owns a dataclass beside its code (the root, `Config`, is in qvltrain/train/config.py);
this module registers that schema in Hydra's ConfigStore (so a misspelt YAML key fails at compose
time with its name) and turns a composed DictConfig into plain typed dataclasses for the code below
it. No other module of the library imports Hydra or omegaconf (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from qvltrain.train.config import Config
from qvltrain.train.stages import STAGES


def register_configs() -> None:
    ConfigStore.instance().store(name="qvltrain_schema", node=Config)


def to_typed(cfg: DictConfig) -> Config:
    """Composed config -> typed `Config`, running every dataclass's `__post_init__` checks."""
    if cfg.get("stage") is None:
        raise ValueError(
            "no stage selected: add +stage=NAME with NAME one of "
            f"{', '.join(STAGES)} (e.g. deepspeed launch/train.py +stage=vit_pretrain)"
        )
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, Config)
    return config


def to_plain_dict(cfg: DictConfig) -> dict[str, Any]:
    """Resolved plain dict of a composed config, for RUN/config.yaml and W&B."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
