"""build_engine: the model (partitioned at creation under ZeRO-3), stage freezing, AdamW, DeepSpeed.

The optimizer is torch's AdamW, or DeepSpeed's vectorised CPU Adam (in AdamW mode, the same update)
when ZeRO offloads the optimizer to CPU memory: DeepSpeed refuses other optimizers there by default.

One function for the trainer and the training benchmark (apps/bench/train_run.py), so the benchmark
measures exactly the engine a run trains with.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch

from qvltrain.model.config import ModelConfig
from qvltrain.model.family import get_family
from qvltrain.train.deepspeed_config import is_zero3, uses_cpu_adam
from qvltrain.train.stages import StageConfig, apply_stage_freezing, parameter_groups


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_module(model, model_config: ModelConfig, stage: StageConfig):
    """The module a run trains: the family's packed forward with the stage's tower and the config's
    loss chunking and activation checkpointing."""
    family = get_family(model_config.family)
    return family.train_module(model, model_config, frozen_vision_tower="vision_tower" not in stage.trainable)


def build_engine(
    model_config: ModelConfig,
    stage: StageConfig,
    ds_config: dict,
    tokenizer,
    *,
    seed: int,
    weight_decay: float,
    adam_betas: tuple[float, float],
    adam_eps: float = 1e-8,
    wrap: Callable | None = None,
):
    """(DeepSpeed engine, trainable parameter count). `wrap(model) -> nn.Module` replaces the default
    `train_module` (the benchmark's HF-style baseline); every rank gets identical initial weights."""
    import deepspeed
    from transformers.integrations import HfDeepSpeedConfig

    family = get_family(model_config.family)

    # transformers enters deepspeed.zero.Init while this object is alive (weakref), so keep it until
    # the engine exists.
    hf_deepspeed_config = HfDeepSpeedConfig(ds_config) if is_zero3(ds_config) else None
    seed_everything(seed)
    model = family.build_model(model_config, tokenizer, zero3=hf_deepspeed_config is not None)
    trainable_numel = apply_stage_freezing(model, stage, family)
    module = wrap(model) if wrap is not None else train_module(model, model_config, stage)
    groups = parameter_groups(model, stage, weight_decay, family)
    if uses_cpu_adam(ds_config):
        from deepspeed.ops.adam import DeepSpeedCPUAdam  # built on first use (ninja and a C++ compiler)

        optimizer = DeepSpeedCPUAdam(groups, betas=tuple(adam_betas), eps=adam_eps, adamw_mode=True)
    else:
        optimizer = torch.optim.AdamW(groups, betas=tuple(adam_betas), eps=adam_eps, foreach=False)
    engine, *_ = deepspeed.initialize(model=module, optimizer=optimizer, config=ds_config)
    del hf_deepspeed_config
    return engine, trainable_numel
