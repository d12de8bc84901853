"""Metric sinks: RUN/metrics.jsonl always, W&B (offline unless configured), on rank 0 only."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

LOGGER_KINDS = ("wandb", "none")
WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class LoggerConfig:
    """Where metrics go besides RUN/metrics.jsonl and the console."""

    kind: str = "wandb"
    """wandb or none."""
    mode: str = "offline"
    """W&B mode: offline (default: sync later with `wandb sync RUN/wandb`), online or disabled."""
    project: str = "qvltrain"
    """W&B project."""
    run_name: str | None = None
    """W&B run name; None uses the run directory's name."""
    tags: list[str] = field(default_factory=list)
    """W&B tags; the stage name is always added."""
    log_every: int = 1
    """Optimizer steps between metric records."""

    def __post_init__(self) -> None:
        if self.kind not in LOGGER_KINDS:
            raise ValueError(f"logger.kind={self.kind!r}: expected one of {', '.join(LOGGER_KINDS)}")
        if self.mode not in WANDB_MODES:
            raise ValueError(f"logger.mode={self.mode!r}: expected one of {', '.join(WANDB_MODES)}")
        if self.log_every <= 0:
            raise ValueError(f"logger.log_every={self.log_every}: must be positive")


class MetricsLogger:
    """Appends one JSON object per record to RUN/metrics.jsonl and mirrors it to W&B."""

    def __init__(
        self, config: LoggerConfig, run_dir: str, stage: str, resolved_config: dict[str, Any], enabled: bool
    ):
        self.enabled = enabled
        self._wandb_run = None
        self._file = None
        if not enabled:
            return
        self._file = open(os.path.join(run_dir, "metrics.jsonl"), "a", buffering=1)  # noqa: SIM115
        if config.kind == "wandb":
            import wandb

            self._wandb_run = wandb.init(
                project=config.project,
                name=config.run_name or os.path.basename(os.path.abspath(run_dir)),
                tags=sorted({*config.tags, stage}),
                config=resolved_config,
                dir=run_dir,
                mode=config.mode,
                settings=wandb.Settings(console="off", x_disable_stats=True),
            )

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        if self._wandb_run is not None:
            step = record.get("step")
            self._wandb_run.log({k: v for k, v in record.items() if k != "step"}, step=step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None
