"""Where one training step's time goes, by phase, from hooks on the model's two big parts.

A `PhaseClock` charges the time between consecutive marks to the phase that was open. Forward hooks
on the vision tower and the LLM mark their forward passes; gradient hooks on their outputs mark
when the backward pass reaches them, which splits the backward pass into loss (LM head + cross
entropy), LLM and vision tower. The training loop marks data, forward, backward and optimizer step.
On a GPU every mark synchronises, so a profiled step runs a little slower than a timed one: it is
for shares, not for speed. ZeRO-3's parameter gathers and gradient reductions fall into the phase
of the module they serve (the optimizer step holds the clipping and the Adam update).
"""

from __future__ import annotations

import time

import torch
from torch import nn

VISION_FORWARD = "vision tower: forward"
VISION_BACKWARD = "vision tower: backward"
LLM_FORWARD = "LLM: forward"
LLM_BACKWARD = "LLM: backward"
LOSS_FORWARD = "loss: forward (LM head + cross-entropy)"
LOSS_BACKWARD = "loss: backward"
GLUE = "glue: pixels, embeddings, scatter"
DATA = "data: batch to device"
OPTIMIZER = "optimizer step (ZeRO-3)"
PHASES = (
    DATA,
    GLUE,
    VISION_FORWARD,
    LLM_FORWARD,
    LOSS_FORWARD,
    LOSS_BACKWARD,
    LLM_BACKWARD,
    VISION_BACKWARD,
    OPTIMIZER,
)


class PhaseClock:
    """Accumulates wall time per phase; `mark(phase)` closes the open phase and opens `phase`."""

    def __init__(self, synchronize: bool):
        self.synchronize = synchronize
        self.seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self._open: str | None = None
        self._since = 0.0

    def mark(self, phase: str | None) -> None:
        if self.synchronize:
            torch.cuda.synchronize()
        now = time.perf_counter()
        if self._open is not None:
            self.seconds[self._open] = self.seconds.get(self._open, 0.0) + now - self._since
        self._open, self._since = phase, now


def attach(clock: PhaseClock, parts: dict[str, nn.Module]) -> list:
    """Hooks on a model's tower and LLM (its family's `parts(model)`); returns the handles to remove."""
    visual, language_model = parts["vision_tower"], parts["language_model"]

    def after(forward_done: str, backward_phase: str, output_of):
        def hook(module, args, output):
            clock.mark(forward_done)
            tensor = output_of(output)
            if tensor.requires_grad:
                tensor.register_hook(lambda grad: clock.mark(backward_phase))

        return hook

    return [
        visual.register_forward_pre_hook(lambda module, args: clock.mark(VISION_FORWARD)),
        visual.register_forward_hook(after(GLUE, VISION_BACKWARD, lambda output: output.pooler_output)),
        language_model.register_forward_pre_hook(lambda module, args: clock.mark(LLM_FORWARD)),
        language_model.register_forward_hook(
            after(LOSS_FORWARD, LLM_BACKWARD, lambda output: output.last_hidden_state)
        ),
    ]
