"""The one place Hydra meets qvltrain: the root config schema and its conversion to typed objects.

Every component owns a dataclass beside its code; this module assembles them, registers the
schema in Hydra's ConfigStore (so a misspelt YAML key fails at compose time with its name), and
turns a composed DictConfig into plain typed dataclasses for the code below it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from qvltrain.data.config import DataConfig
from qvltrain.model.flavors import ModelConfig
from qvltrain.train.config import TrainConfig
from qvltrain.train.loggers import LoggerConfig
from qvltrain.train.stages import STAGES, StageConfig


@dataclass
class Config:
    """Root of conf/config.yaml."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    deepspeed: dict[str, Any] = field(default_factory=dict)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stage: StageConfig | None = None


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
