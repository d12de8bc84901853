"""Data configuration: which datasets, under which pixel budgets, in which template."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from qvltrain.vision.budgets import ImageBudget, VideoBudget


@dataclass
class DatasetConfig:
    """One source of shards with its own budgets (conf/data/*.yaml lists them)."""

    name: str = MISSING
    """Short name used in logs and skip counters."""
    shards: str = MISSING
    """Folder of *.tar, brace pattern, glob or webdataset URL; several joined with '::'."""
    image_budget: ImageBudget = MISSING
    """Pixel budget of images; always explicit (sources disagree on defaults, see docs/vision.md)."""
    video_budget: VideoBudget | None = None
    """Pixel and frame budget of videos; required when the dataset has videos."""
    weight: float = 1.0
    """Relative sampling weight in a mixture."""
    template: str | None = None
    """Rendering (plain or chatml); None uses the stage's template."""

    def __post_init__(self) -> None:
        if self.weight <= 0:
            raise ValueError(f"data dataset {self.name!r}: weight={self.weight} must be positive")
        if self.template not in (None, "plain", "chatml"):
            raise ValueError(
                f"data dataset {self.name!r}: template={self.template!r}: expected plain or chatml"
            )


@dataclass
class DataConfig:
    """Training and validation data of a run."""

    train: list[DatasetConfig] = field(default_factory=list)
    """Training datasets, blended by weight."""
    validation: list[DatasetConfig] = field(default_factory=list)
    """Held-out datasets for validation loss."""
    max_length: int = 1024
    """Longest rendered sample in tokens; longer ones are truncated at turn boundaries or skipped."""
    micro_batch_size: int = 4
    """Samples per micro-batch (padded to the longest); the packer replaces this with packs of max_length."""
    num_workers: int = 0
    """DataLoader worker processes per rank."""
    seed: int = 0
    """Seed of shard order and shuffles."""
    shuffle_buffer: int = 256
    """Samples held for shuffling within a rank."""

    def __post_init__(self) -> None:
        for name in ("max_length", "micro_batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"data.{name}={getattr(self, name)}: must be positive")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers={self.num_workers}: must be >= 0")
