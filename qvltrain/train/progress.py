"""Console progress bar on rank 0 (tqdm, which transformers already depends on)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class ProgressBar:
    def __init__(self, total_steps: int, enabled: bool):
        self._bar = (
            # In a log file (SLURM, CI) a redraw per step would flood it: redraw every 30 s there.
            tqdm(
                total=total_steps,
                desc="train",
                unit="step",
                file=sys.stdout,
                dynamic_ncols=True,
                mininterval=0.2 if sys.stdout.isatty() else 30.0,
            )
            if enabled
            else None
        )

    def update(self, metrics: dict[str, Any]) -> None:
        if self._bar is None:
            return
        self._bar.set_postfix(
            loss=f"{metrics['loss']:.4f}",
            gnorm=f"{metrics['grad_norm']:.3f}",
            tok_s=f"{metrics['tokens_per_s']:.0f}",
        )
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
