"""Qwen2-VL's packed training forward: the shared `PackedTrainModule` with Qwen2-VL's tower.

The tower attends within each image or temporal slice of a video (its cu_seqlens come from the
grids), with 2D rotary positions per patch; everything else is common/train_module.py.
"""

from __future__ import annotations

import torch
from transformers.vision_utils import get_vision_attention_seqlens, get_vision_position_ids

from qvltrain.model.common.train_module import PackedTrainModule


class Qwen2VLTrainModule(PackedTrainModule):
    """A `Qwen2VLForConditionalGeneration` (as `.model`) trained on packed micro-batches."""

    def tower_blocks(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        visual = self.model.model.visual
        position_ids = get_vision_position_ids(grid_thw, visual.spatial_merge_size, kwargs={})
        cu_seqlens, max_seqlen = get_vision_attention_seqlens(grid_thw, visual.config, kwargs={})
        hidden = visual.patch_embed(pixel_values)
        position_embeddings = visual.rotary_pos_emb(hidden, position_ids)
        for block in visual.blocks:
            hidden = block(
                hidden, cu_seqlens=cu_seqlens, max_seqlen=max_seqlen, position_embeddings=position_embeddings
            )
        return hidden
