"""Data configuration: which datasets, under which pixel budgets, in which template, packed how."""

from __future__ import annotations

from dataclasses import dataclass, field

from qvltrain.vision.budgets import ImageBudget, VideoBudget


@dataclass
class DatasetConfig:
    """One source of shards with its own budgets (conf/data/*.yaml lists them).

    `name`, `shards` and `image_budget` have no default: the Hydra schema (qvltrain/config.py) treats
    them as mandatory, so a dataset that leaves one out fails at compose time naming it.
    """

    name: str
    """Short name used in logs and skip counters."""
    shards: str
    """Folder of *.tar / *.tar.gz, brace pattern, glob, webdataset URL or a JSON/JSONL file; '::' joins several."""
    image_budget: ImageBudget
    """Pixel budget of images; always explicit (sources disagree on defaults, see docs/vision.md)."""
    video_budget: VideoBudget | None = None
    """Pixel and frame budget of videos; required when the dataset has videos."""
    weight: float = 1.0
    """Relative sampling weight in a mixture (the share of samples drawn from this dataset)."""
    template: str | None = None
    """Rendering (plain or chatml); None uses the stage's template."""
    media_root: str | None = None
    """Folder relative media paths of a JSON/JSONL dataset are read from; None: the file's folder."""

    def __post_init__(self) -> None:
        if self.weight <= 0:
            raise ValueError(f"data dataset {self.name!r}: weight={self.weight} must be positive")
        if self.template not in (None, "plain", "chatml"):
            raise ValueError(
                f"data dataset {self.name!r}: template={self.template!r}: expected plain or chatml"
            )


@dataclass
class DataConfig:
    """Training and validation data of a run, and how it is packed (docs/data.md)."""

    train: list[DatasetConfig] = field(default_factory=list)
    """Training datasets, blended by weight."""
    validation: list[DatasetConfig] = field(default_factory=list)
    """Held-out datasets for validation loss."""
    seq_len: int = 1024
    """Tokens per pack; longer samples are cut at a turn boundary or skipped (counted)."""
    max_patches: int = 4096
    """ViT patch rows per pack (bounds the vision tower's memory); a sample with more is skipped."""
    micro_batch_size: int = 1
    """Packs per micro-batch, concatenated into one row of micro_batch_size * seq_len tokens."""
    pack_window: int = 256
    """Samples (metadata only) the packer plans over at once; larger packs tighter (apps/bench/packing.py)."""
    num_workers: int = 0
    """DataLoader worker processes per rank (each reads its own shards); resume needs the same value."""
    seed: int = 0
    """Seed of shard order, shuffles and the mixture."""
    shuffle_buffer: int = 64
    """Samples held (encoded) per dataset and reader for shuffling; 1 keeps shard order."""
    max_consecutive_failures: int = 100
    """Consecutive bad samples that stop the run with an error (invariant 7)."""
    max_skip_fraction: float = 0.5
    """Skipped share of a dataset's last skip_window samples (per reader) that stops the run; 1.0 turns it off."""
    skip_window: int = 1000
    """Samples per dataset and reader the skip fraction is measured over (checked once the window is full)."""
    balance_lookahead: int = 0
    """Planned packs each reader holds to balance ranks by cost (qvltrain/data/balance.py); 0: planning order."""
    balance_calibration: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])
    """Relative seconds per FLOP of the cost terms (LLM token, LLM pair, vision patch, vision pair), from apps.bench.cost_fit."""

    def __post_init__(self) -> None:
        for name in (
            "seq_len",
            "max_patches",
            "micro_batch_size",
            "pack_window",
            "shuffle_buffer",
            "max_consecutive_failures",
            "skip_window",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"data.{name}={getattr(self, name)}: must be positive")
        if not 0.0 < self.max_skip_fraction <= 1.0:
            raise ValueError(
                f"data.max_skip_fraction={self.max_skip_fraction}: must be in (0, 1] (1 turns it off)"
            )
        if self.balance_lookahead < 0:
            raise ValueError(
                f"data.balance_lookahead={self.balance_lookahead}: must be >= 0 (0 turns it off)"
            )
        calibration = list(self.balance_calibration)
        if len(calibration) != 4 or min(calibration) < 0 or max(calibration) <= 0:
            raise ValueError(
                f"data.balance_calibration={calibration}: expected 4 numbers >= 0, not all 0 "
                "(LLM token, LLM pair, vision patch, vision pair)"
            )
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers={self.num_workers}: must be >= 0")
        if self.max_patches < 4:
            raise ValueError(f"data.max_patches={self.max_patches}: must be >= 4 (one merged token)")
