"""Qwen2.5-VL's packed training forward: the shared `PackedTrainModule` with Qwen2.5-VL's tower.

The tower runs packed with window attention (qwen2_5_vl/vision.py: windows of 8x8 patches, full
attention within each frame at `fullatt_block_indexes`, never across items); the LLM receives the
absolute-time M-RoPE positions the loader computed (PackedBatch.position_ids). Everything else,
including the one tower call per micro-batch on every rank (invariant 3), is common/train_module.py.
"""

from __future__ import annotations

import torch

from qvltrain.model.common.train_module import PackedTrainModule
from qvltrain.model.qwen2_5_vl.vision import tower_blocks


class Qwen2_5_VLTrainModule(PackedTrainModule):
    """A `Qwen2_5_VLForConditionalGeneration` (as `.model`) trained on packed micro-batches."""

    def tower_blocks(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        return tower_blocks(self.model.model.visual, pixel_values, grid_thw)
