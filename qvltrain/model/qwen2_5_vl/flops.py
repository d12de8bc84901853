"""Qwen2.5-VL's forward FLOPs from its real shapes (the family's `FlopModel`).

Matrix-multiply FLOPs (2 per multiply-add). The LLM counts as Qwen2-VL's (causal attention within
each packed sample). The tower differs: SwiGLU blocks (three projections of width
`intermediate_size`), attention within 8x8-patch windows in the window blocks and within each frame
in the full-attention blocks, and a merger to `out_hidden_size`. Padding is not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Qwen2_5_VLFlops:
    """The dimensions FLOPs depend on, read from a transformers Qwen2_5_VLConfig."""

    hidden: int
    intermediate: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    vocab: int
    vision_dim: int
    vision_mlp: int
    vision_depth: int
    num_full_blocks: int
    window_tokens: int
    """Merged tokens per window side (window_size / patch / merge: 4 for 112 px)."""
    patch_dim: int
    merge_unit: int

    @classmethod
    def from_hf_config(cls, config) -> Qwen2_5_VLFlops:
        text, vision = config.text_config, config.vision_config
        return cls(
            hidden=text.hidden_size,
            intermediate=text.intermediate_size,
            num_layers=text.num_hidden_layers,
            num_heads=text.num_attention_heads,
            num_kv_heads=text.num_key_value_heads,
            vocab=text.vocab_size,
            vision_dim=vision.hidden_size,
            vision_mlp=vision.intermediate_size,
            vision_depth=vision.depth,
            num_full_blocks=len(vision.fullatt_block_indexes),
            window_tokens=vision.window_size // vision.patch_size // vision.spatial_merge_size,
            patch_dim=vision.in_channels * vision.temporal_patch_size * vision.patch_size**2,
            merge_unit=vision.spatial_merge_size**2,
        )

    def llm_forward_flops(self, segment_lengths: Sequence[int], num_logit_tokens: int) -> float:
        """Decoder layers over all tokens, causal attention per segment, LM head over `num_logit_tokens`."""
        head_dim = self.hidden // self.num_heads
        kv_dim = self.num_kv_heads * head_dim
        tokens = sum(segment_lengths)
        per_token = 2 * (
            2 * self.hidden * self.hidden + 2 * self.hidden * kv_dim + 3 * self.hidden * self.intermediate
        )  # q, o, k, v, gate, up, down
        attention = sum(2 * 2 * self.hidden * length * (length + 1) / 2 for length in segment_lengths)
        return (
            self.num_layers * (per_token * tokens + attention)
            + 2 * self.hidden * self.vocab * num_logit_tokens
        )

    def _window_pairs(self, h: int, w: int) -> int:
        """(query, key) pairs of one frame's window attention: the sum of squared window sizes in patches."""
        side, merge = self.window_tokens, int(self.merge_unit**0.5)
        rows = np.diff(np.minimum(np.arange(0, h // merge + side, side), h // merge))
        columns = np.diff(np.minimum(np.arange(0, w // merge + side, side), w // merge))
        sizes = np.outer(rows[rows > 0], columns[columns > 0]) * self.merge_unit
        return int((sizes**2).sum())

    def vision_forward_flops(self, grid_thw: Sequence[Sequence[int]]) -> tuple[float, float]:
        """(tower, merger) forward FLOPs: patch embedding, blocks (window or full attention per frame),
        and the merger."""
        patches = sum(t * h * w for t, h, w in grid_thw)
        dim = self.vision_dim
        per_patch_block = 2 * (4 * dim * dim + 3 * dim * self.vision_mlp)  # qkv + proj, gate + up + down
        full_pairs = sum(t * (h * w) ** 2 for t, h, w in grid_thw)
        window_pairs = sum(t * self._window_pairs(h, w) for t, h, w in grid_thw)
        num_window_blocks = self.vision_depth - self.num_full_blocks
        attention = 2 * 2 * dim * (self.num_full_blocks * full_pairs + num_window_blocks * window_pairs)
        tower = 2 * self.patch_dim * dim * patches + self.vision_depth * per_patch_block * patches + attention
        merged = patches // self.merge_unit
        wide = self.merge_unit * dim
        merger = 2 * merged * (wide * wide + wide * self.hidden)
        return tower, merger


QWEN2_5_VL_3B = Qwen2_5_VLFlops(
    hidden=2048, intermediate=11008, num_layers=36, num_heads=16, num_kv_heads=2, vocab=151936,
    vision_dim=1280, vision_mlp=3420, vision_depth=32, num_full_blocks=4, window_tokens=4,
    patch_dim=1176, merge_unit=4,
)  # fmt: skip
"""Qwen2.5-VL-3B-Instruct's shape (its config.json), the family's reference (benchmarks' default)."""
