"""Turn conf/deepspeed/*.yaml into the dict `deepspeed.initialize` takes, for this machine."""

from __future__ import annotations

import copy
from typing import Any


def resolve_deepspeed_config(
    base: dict[str, Any], *, micro_batch_size: int, grad_accum_steps: int, world_size: int, on_gpu: bool
) -> dict[str, Any]:
    """Fill the `auto` entries: batch sizes from the train config, bf16 on GPU and fp32 on CPU."""
    config = copy.deepcopy(base)
    config["train_micro_batch_size_per_gpu"] = micro_batch_size
    config["gradient_accumulation_steps"] = grad_accum_steps
    config["train_batch_size"] = micro_batch_size * grad_accum_steps * world_size
    bf16 = config.setdefault("bf16", {})
    if bf16.get("enabled", "auto") == "auto":
        bf16["enabled"] = on_gpu
    if not on_gpu:
        # DeepSpeed's fused optimizers are CUDA-only; torch's AdamW is exact and fine at CPU scale.
        config["zero_allow_untested_optimizer"] = True
    stage = config.get("zero_optimization", {}).get("stage")
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"deepspeed.zero_optimization.stage={stage!r}: expected 0, 1, 2 or 3")
    return config


def is_zero3(config: dict[str, Any]) -> bool:
    return config.get("zero_optimization", {}).get("stage") == 3
