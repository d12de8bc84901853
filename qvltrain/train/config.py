"""Configuration of the training loop itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from qvltrain.train.checkpoint import CheckpointConfig
from qvltrain.train.schedule import ScheduleConfig
from qvltrain.train.validate import ValidationConfig


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
    inject_nonfinite_loss: list[int] = field(default_factory=list)
    """Testing aid: [step, rank] makes that rank's loss NaN at that (1-based) step."""

    def __post_init__(self) -> None:
        for name in ("max_steps", "grad_accum_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"train.{name}={getattr(self, name)}: must be positive")
        if self.max_nonfinite_steps < 0:
            raise ValueError(f"train.max_nonfinite_steps={self.max_nonfinite_steps}: must be >= 0")
        if self.inject_nonfinite_loss and len(self.inject_nonfinite_loss) != 2:
            raise ValueError(
                f"train.inject_nonfinite_loss={list(self.inject_nonfinite_loss)}: expected [step, rank]"
            )
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"train.adam_betas={list(self.adam_betas)}: expected two numbers in [0, 1)")
