"""Model FLOPs of a training step, for MFU: the LLM and the vision tower, from the real shapes.

Counted as matrix-multiply FLOPs (2 per multiply-add). Per module, a forward pass costs F; the
backward pass costs F for activation gradients (needed when anything before the module trains)
plus F for weight gradients (when the module itself trains). Attention is counted over the real
segments: causal within each packed sample for the LLM, bidirectional within each image or
temporal slice for the ViT. Padding is not counted (it is not useful work).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qvltrain.data.balance import CostModel

PEAK_BF16_FLOPS = {
    # Dense bf16 tensor-core peaks from the vendors' datasheets (no sparsity).
    "H100 SXM": 989e12,
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10": 125e12,
}


def device_peak_flops(override: float | None = None) -> float | None:
    """Peak bf16 FLOP/s of this process's device; None when unknown (CPU) and no override is given."""
    if override:
        return override
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):
        if all(part.lower() in name.lower() for part in key.split()):
            return PEAK_BF16_FLOPS[key]
    return None


@dataclass(frozen=True)
class ModelShape:
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
    def from_hf_config(cls, config) -> ModelShape:
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


def llm_forward_flops(shape: ModelShape, segment_lengths: Sequence[int], num_logit_tokens: int) -> float:
    """Decoder layers over all tokens, causal attention per segment, LM head over `num_logit_tokens`."""
    head_dim = shape.hidden // shape.num_heads
    kv_dim = shape.num_kv_heads * head_dim
    tokens = sum(segment_lengths)
    per_token = 2 * (
        shape.hidden * shape.hidden  # q
        + 2 * shape.hidden * kv_dim  # k, v
        + shape.hidden * shape.hidden  # o
        + 3 * shape.hidden * shape.intermediate  # gate, up, down
    )
    # Causal: query i attends to i+1 keys; QK^T and AV each cost 2 * hidden per pair.
    attention = sum(2 * 2 * shape.hidden * length * (length + 1) / 2 for length in segment_lengths)
    return (
        shape.num_layers * (per_token * tokens + attention)
        + 2 * shape.hidden * shape.vocab * num_logit_tokens
    )


def vision_forward_flops(shape: ModelShape, grid_thw: Sequence[Sequence[int]]) -> tuple[float, float]:
    """(tower, merger) forward FLOPs: patch embedding + blocks (attention within each temporal slice
    of each item), and the 2x2 merger."""
    patches = sum(t * h * w for t, h, w in grid_thw)
    dim = shape.vision_dim
    per_patch_block = 2 * (4 * dim * dim + 2 * dim * shape.vision_mlp)  # qkv + proj, fc1 + fc2
    attention = sum(t * 2 * 2 * dim * (h * w) ** 2 for t, h, w in grid_thw)
    tower = 2 * shape.patch_dim * dim * patches + shape.vision_depth * (per_patch_block * patches + attention)
    merged = patches // shape.merge_unit
    wide = shape.merge_unit * dim
    merger = 2 * merged * (wide * wide + wide * shape.hidden)
    return tower, merger


def training_flops(
    shape: ModelShape,
    segment_lengths: Sequence[int],
    num_logit_tokens: int,
    grid_thw: Sequence[Sequence[int]],
    trainable: Sequence[str],
) -> float:
    """FLOPs of forward + backward of one micro-batch under a stage's trainable groups."""
    tower, merger = vision_forward_flops(shape, grid_thw)
    llm = llm_forward_flops(shape, segment_lengths, num_logit_tokens)
    tower_passes = 3 if "vision_tower" in trainable else 1
    merger_passes = 1 + int("vision_tower" in trainable or "merger" in trainable) + int("merger" in trainable)
    # The LLM always needs activation gradients (something trains, and the vision side sits before it).
    llm_passes = 2 + int("llm" in trainable)
    return tower_passes * tower + merger_passes * merger + llm_passes * llm


QWEN2VL_2B = ModelShape(
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
"""Qwen2-VL-2B-Instruct's shape (its config.json), the default of the balance cost model."""


def balance_cost_model(shape: ModelShape, trainable: Sequence[str]) -> CostModel:
    """The data balance's `CostModel` in training FLOPs of this shape under a stage's trainable groups.

    Each coefficient is read off the FLOP functions above (so the two never disagree): LLM FLOPs of
    one sample of L tokens are t*L + p*L(L+1)/2, vision FLOPs of one slice of P patches c*P + d*P^2.
    """
    passes = {  # the pass counts of training_flops
        "tower": 3 if "vision_tower" in trainable else 1,
        "merger": 1 + int("vision_tower" in trainable or "merger" in trainable) + int("merger" in trainable),
        "llm": 2 + int("llm" in trainable),
    }
    one, two = llm_forward_flops(shape, [1], 1), llm_forward_flops(shape, [2], 2)
    llm_pair = two - 2 * one  # f(2) - 2 f(1) = p (3p - 2p), the linear parts cancel
    llm_token = one - llm_pair
    (tower_one, _), (tower_two, _) = (vision_forward_flops(shape, [(1, 1, n)]) for n in (1, 2))
    vision_pair = (tower_two - 2 * tower_one) / 2  # g(2) - 2 g(1) = 2d
    vision_patch = tower_one - vision_pair
    _, merger = vision_forward_flops(shape, [(1, 1, shape.merge_unit)])
    return CostModel(
        llm_token=passes["llm"] * llm_token,
        llm_pair=passes["llm"] * llm_pair,
        vision_patch=passes["tower"] * vision_patch + passes["merger"] * merger / shape.merge_unit,
        vision_pair=passes["tower"] * vision_pair,
    )
