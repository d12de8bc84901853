"""Configuration of the training loop (`TrainConfig`) and the root of a run's config (`Config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qvltrain.data.config import DataConfig
from qvltrain.model.config import ModelConfig
from qvltrain.train.checkpoint import CheckpointConfig
from qvltrain.train.loggers import LoggerConfig
from qvltrain.train.schedule import ScheduleConfig
from qvltrain.train.stages import StageConfig
from qvltrain.train.validation import ValidationConfig


@dataclass
class TrainConfig:
    """Steps, accumulation, optimizer and run directory."""

    run_dir: str = "runs/default"
    """Run directory shared by all ranks (config.yaml, metrics.jsonl, checkpoints, wandb)."""
    max_steps: int = 50
    """Optimizer steps to train."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step and rank."""
    weight_decay: float = 0.1
    """AdamW weight decay of matrices (norms and biases get none)."""
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW betas."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (DeepSpeed's gradient_clipping); 0 disables clipping."""
    seed: int = 0
    """Seed of model initialisation and everything random in the step."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """Learning-rate schedule."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpointing and resume."""
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    """Held-out loss on data.validation."""
    peak_flops: float | None = None
    """Peak FLOP/s of one device for MFU; None looks the GPU up in qvltrain/train/flops.py (CPU: no MFU)."""
    max_nonfinite_steps: int = 10
    """Steps with a non-finite loss or grad norm that are skipped (on all ranks) before the run stops."""

    def __post_init__(self) -> None:
        for name in ("max_steps", "grad_accum_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"train.{name}={getattr(self, name)}: must be positive")
        if self.max_nonfinite_steps < 0:
            raise ValueError(f"train.max_nonfinite_steps={self.max_nonfinite_steps}: must be >= 0")
        if not self.adam_eps > 0:
            raise ValueError(f"train.adam_eps={self.adam_eps}: must be positive")
        if not self.max_grad_norm >= 0:
            raise ValueError(f"train.max_grad_norm={self.max_grad_norm}: must be >= 0 (0 disables clipping)")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"train.adam_betas={list(self.adam_betas)}: expected two numbers in [0, 1)")


@dataclass
class Config:
    """Root of conf/config.yaml."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    deepspeed: dict[str, Any] = field(default_factory=dict)
    """DeepSpeed settings (conf/deepspeed/*.yaml), or config_file naming a DeepSpeed JSON of your own;
    "auto" values are filled from this config (qvltrain/train/deepspeed_config.py)."""
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stage: StageConfig | None = None
