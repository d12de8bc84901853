"""Held-out loss and token accuracy on the validation datasets, packed like training data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from qvltrain.batch import PackedBatch
from qvltrain.train.distributed import all_reduce_sum


@dataclass
class ValidationConfig:
    """When and how much to validate."""

    every_steps: int = 0
    """Validate every N optimizer steps (0: only after the last step)."""
    num_batches: int = 4
    """Micro-batches per rank per validation: the same first batches of the validation data each time."""

    def __post_init__(self) -> None:
        if self.every_steps < 0:
            raise ValueError(f"train.validation.every_steps={self.every_steps}: must be >= 0")
        if self.num_batches < 0:
            raise ValueError(f"train.validation.num_batches={self.num_batches}: must be >= 0")


def validation_metrics(
    engine, make_batches: Callable[[], Iterator[PackedBatch]], num_batches: int, device: torch.device
) -> dict[str, float]:
    """Collective: every rank runs `num_batches` forward passes (so ZeRO-3 gathers stay in step)."""
    batches = make_batches()
    loss_sum = num_tokens = num_correct = 0.0
    engine.eval()
    try:
        with torch.no_grad():
            for _ in range(num_batches):
                batch_loss, batch_tokens, batch_correct = engine(next(batches).to(device))
                loss_sum += float(batch_loss)
                num_tokens += float(batch_tokens)
                num_correct += float(batch_correct)
    finally:
        engine.train()
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    loss_sum, num_tokens, num_correct = all_reduce_sum([loss_sum, num_tokens, num_correct], device)
    return {
        "val_loss": loss_sum / max(num_tokens, 1.0),
        "val_token_accuracy": num_correct / max(num_tokens, 1.0),
        "val_loss_tokens": int(num_tokens),
    }
