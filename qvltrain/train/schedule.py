"""Learning-rate schedule: a pure function of the step, so resume needs no scheduler state."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ScheduleConfig:
    """Linear warmup then cosine decay to `min_lr_ratio` of the peak."""

    warmup_steps: int = 10
    """Steps of linear warmup from 0 to the peak learning rate."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of each group's peak."""

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise ValueError(f"train.schedule.warmup_steps={self.warmup_steps}: must be >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"train.schedule.min_lr_ratio={self.min_lr_ratio}: must be in [0, 1]")


def lr_multiplier(step: int, max_steps: int, config: ScheduleConfig) -> float:
    """Multiplier of the peak learning rate for optimizer step `step` (0-based)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    decay_steps = max(1, max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine
