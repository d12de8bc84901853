"""Qwen2-VL's forward FLOPs from its real shapes (the family's `FlopModel`).

Counted as matrix-multiply FLOPs (2 per multiply-add). Attention is counted over the real segments:
causal within each packed sample for the LLM, bidirectional within each image or temporal slice for
the ViT. Padding is not counted (it is not useful work). qvltrain/train/flops.py adds the backward
passes a stage needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Qwen2VLFlops:
    """The dimensions FLOPs depend on, read from a transformers Qwen2VLConfig."""

    hidden: int
    intermediate: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    vocab: int
    vision_dim: int
    vision_mlp: int
    vision_depth: int
    patch_dim: int
    merge_unit: int

    @classmethod
    def from_hf_config(cls, config) -> Qwen2VLFlops:
        text, vision = config.text_config, config.vision_config
        return cls(
            hidden=text.hidden_size,
            intermediate=text.intermediate_size,
            num_layers=text.num_hidden_layers,
            num_heads=text.num_attention_heads,
            num_kv_heads=text.num_key_value_heads,
            vocab=text.vocab_size,
            vision_dim=vision.embed_dim,
            vision_mlp=int(vision.embed_dim * vision.mlp_ratio),
            vision_depth=vision.depth,
            patch_dim=vision.in_channels * vision.temporal_patch_size * vision.patch_size**2,
            merge_unit=vision.spatial_merge_size**2,
        )

    def llm_forward_flops(self, segment_lengths: Sequence[int], num_logit_tokens: int) -> float:
        """Decoder layers over all tokens, causal attention per segment, LM head over `num_logit_tokens`."""
        head_dim = self.hidden // self.num_heads
        kv_dim = self.num_kv_heads * head_dim
        tokens = sum(segment_lengths)
        per_token = 2 * (
            self.hidden * self.hidden  # q
            + 2 * self.hidden * kv_dim  # k, v
            + self.hidden * self.hidden  # o
            + 3 * self.hidden * self.intermediate  # gate, up, down
        )
        # Causal: query i attends to i+1 keys; QK^T and AV each cost 2 * hidden per pair.
        attention = sum(2 * 2 * self.hidden * length * (length + 1) / 2 for length in segment_lengths)
        return (
            self.num_layers * (per_token * tokens + attention)
            + 2 * self.hidden * self.vocab * num_logit_tokens
        )

    def vision_forward_flops(self, grid_thw: Sequence[Sequence[int]]) -> tuple[float, float]:
        """(tower, merger) forward FLOPs: patch embedding + blocks (attention within each temporal slice
        of each item), and the 2x2 merger."""
        patches = sum(t * h * w for t, h, w in grid_thw)
        dim = self.vision_dim
        per_patch_block = 2 * (4 * dim * dim + 2 * dim * self.vision_mlp)  # qkv + proj, fc1 + fc2
        attention = sum(t * 2 * 2 * dim * (h * w) ** 2 for t, h, w in grid_thw)
        tower = 2 * self.patch_dim * dim * patches + self.vision_depth * (
            per_patch_block * patches + attention
        )
        merged = patches // self.merge_unit
        wide = self.merge_unit * dim
        merger = 2 * merged * (wide * wide + wide * self.hidden)
        return tower, merger


QWEN2VL_2B = Qwen2VLFlops(
    hidden=1536,
    intermediate=8960,
    num_layers=28,
    num_heads=12,
    num_kv_heads=2,
    vocab=151936,
    vision_dim=1280,
    vision_mlp=5120,
    vision_depth=32,
    patch_dim=1176,
    merge_unit=4,
)
"""Qwen2-VL-2B-Instruct's shape (its config.json), the family's reference (benchmarks' default cost model)."""
