"""The training loop: build everything from a typed Config, step DeepSpeed, log metrics."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import yaml

from qvltrain.config import Config
from qvltrain.data.batch import Batch
from qvltrain.train.deepspeed_config import is_zero3, resolve_deepspeed_config
from qvltrain.train.distributed import all_reduce_sum, barrier, init_distributed
from qvltrain.train.loggers import MetricsLogger
from qvltrain.train.progress import ProgressBar
from qvltrain.train.schedule import lr_multiplier
from qvltrain.train.stages import apply_stage_freezing, parameter_groups


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_engine(config: Config, tokenizer, world_size: int, on_gpu: bool):
    """Model (partitioned at creation under ZeRO-3), stage freezing, optimizer, DeepSpeed engine."""
    import deepspeed
    from transformers.integrations import HfDeepSpeedConfig

    from qvltrain.model.build import build_model
    from qvltrain.model.train_module import VisionLanguageTrainModule

    ds_config = resolve_deepspeed_config(
        config.deepspeed,
        micro_batch_size=config.data.micro_batch_size,
        grad_accum_steps=config.train.grad_accum_steps,
        world_size=world_size,
        on_gpu=on_gpu,
    )
    # transformers enters deepspeed.zero.Init while this object is alive (weakref), so keep it until
    # the engine exists.
    hf_deepspeed_config = HfDeepSpeedConfig(ds_config) if is_zero3(ds_config) else None
    seed_everything(config.train.seed)  # identical initial weights on every rank
    model = build_model(config.model, tokenizer, zero3=hf_deepspeed_config is not None)
    trainable_numel = apply_stage_freezing(model, config.stage)
    module = VisionLanguageTrainModule(
        model, frozen_vision_tower="vision_tower" not in config.stage.trainable
    )
    groups = parameter_groups(module, config.stage, config.train.weight_decay)
    optimizer = torch.optim.AdamW(groups, betas=tuple(config.train.adam_betas), foreach=False)
    engine, *_ = deepspeed.initialize(model=module, optimizer=optimizer, config=ds_config)
    del hf_deepspeed_config
    return engine, trainable_numel


class Trainer:
    """Runs one stage: `Trainer(config, resolved).fit()` on every rank."""

    def __init__(self, config: Config, resolved_config: dict[str, Any]):
        self.config = config
        self.rank, self.world_size, self.local_rank = init_distributed()
        self.on_gpu = torch.cuda.is_available()
        self.device = torch.device("cuda", self.local_rank) if self.on_gpu else torch.device("cpu")
        self.run_dir = os.path.abspath(config.train.run_dir)
        if self.rank == 0:
            os.makedirs(self.run_dir, exist_ok=True)
            with open(os.path.join(self.run_dir, "config.yaml"), "w") as config_file:
                yaml.safe_dump(resolved_config, config_file, sort_keys=False)
        barrier()

        from qvltrain.data.simple_loader import build_train_batches
        from qvltrain.text.tokenizer import load_tokenizer

        self.tokenizer = load_tokenizer(config.model.tokenizer)
        self.engine, trainable_numel = build_engine(config, self.tokenizer, self.world_size, self.on_gpu)
        self.batches: Iterator[Batch] = build_train_batches(
            config.data, config.stage.template, self.tokenizer, rank=self.rank, world_size=self.world_size
        )
        self.logger = MetricsLogger(
            config.logger, self.run_dir, config.stage.name, resolved_config, enabled=self.rank == 0
        )
        if self.rank == 0:
            counts = ", ".join(f"{group} {numel:,}" for group, numel in trainable_numel.items())
            print(f"[qvltrain] stage {config.stage.name}: trainable parameters: {counts}", flush=True)

    def _set_learning_rates(self, step: int) -> dict[str, float]:
        multiplier = lr_multiplier(step, self.config.train.max_steps, self.config.train.schedule)
        rates = {}
        for group in self.engine.optimizer.param_groups:
            group["lr"] = group["peak_lr"] * multiplier
            rates[f"lr/{group['name']}"] = group["lr"]
        return rates

    def train_step(self, step: int) -> dict[str, Any]:
        """One optimizer step over `grad_accum_steps` micro-batches; returns its metrics."""
        grad_accum_steps = self.config.train.grad_accum_steps
        start = time.perf_counter()
        micro_batches = [next(self.batches) for _ in range(grad_accum_steps)]
        data_seconds = time.perf_counter() - start
        # Invariant 4: the step loss is the sum of token losses over the global loss-token count.
        local_loss_tokens = sum(batch.num_loss_tokens for batch in micro_batches)
        (global_loss_tokens,) = all_reduce_sum([local_loss_tokens], self.device)
        rates = self._set_learning_rates(step)
        # DeepSpeed divides by grad_accum_steps in backward and averages gradients over ranks.
        scale = self.world_size * grad_accum_steps / max(global_loss_tokens, 1.0)
        local_loss_sum = 0.0
        for batch in micro_batches:
            loss_sum, _ = self.engine(batch.to(self.device))
            self.engine.backward(loss_sum * scale)
            self.engine.step()
            local_loss_sum += float(loss_sum.detach())
        real_tokens = sum(batch.num_real_tokens for batch in micro_batches)
        global_loss_sum, global_real_tokens = all_reduce_sum([local_loss_sum, real_tokens], self.device)
        seconds = time.perf_counter() - start
        grad_norm = self.engine.get_global_grad_norm()
        return {
            "step": step + 1,
            "loss": global_loss_sum / max(global_loss_tokens, 1.0),
            "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
            "tokens_per_s": global_real_tokens / seconds,
            "loss_tokens": int(global_loss_tokens),
            "data_wait_share": data_seconds / seconds,
            "step_seconds": seconds,
            **rates,
        }

    def fit(self) -> list[dict[str, Any]]:
        history = []
        max_steps = self.config.train.max_steps
        progress = ProgressBar(max_steps, enabled=self.rank == 0)
        for step in range(max_steps):
            metrics = self.train_step(step)
            history.append(metrics)
            if (step + 1) % self.config.logger.log_every == 0 or step + 1 == max_steps:
                self.logger.log(metrics)
            progress.update(metrics)
        progress.close()
        self.logger.close()
        if self.rank == 0:
            first, last = history[0]["loss"], history[-1]["loss"]
            print(f"[qvltrain] loss {first:.4f} -> {last:.4f} over {max_steps} steps", flush=True)
            print(f"[qvltrain] run directory: {self.run_dir}", flush=True)
        barrier()
        return history
