"""Model FLOPs of a training step, for MFU and the rank balance, from the family's forward FLOPs.

The model family counts forward FLOPs of its LLM, tower and merger (`ModelFamily.flops`, a
`FlopModel`, e.g. qvltrain/model/qwen2_vl/flops.py). Per module, a forward pass costs F; the
backward pass costs F for activation gradients (needed when anything before the module trains)
plus F for weight gradients (when the module itself trains).
"""

from __future__ import annotations

from collections.abc import Sequence

from qvltrain.data.balance import CostModel
from qvltrain.model.family import FlopModel

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


def training_flops(
    shape: FlopModel,
    segment_lengths: Sequence[int],
    num_logit_tokens: int,
    grid_thw: Sequence[Sequence[int]],
    trainable: Sequence[str],
) -> float:
    """FLOPs of forward + backward of one micro-batch under a stage's trainable groups."""
    tower, merger = shape.vision_forward_flops(grid_thw)
    llm = shape.llm_forward_flops(segment_lengths, num_logit_tokens)
    tower_passes = 3 if "vision_tower" in trainable else 1
    merger_passes = 1 + int("vision_tower" in trainable or "merger" in trainable) + int("merger" in trainable)
    # The LLM always needs activation gradients (something trains, and the vision side sits before it).
    llm_passes = 2 + int("llm" in trainable)
    return tower_passes * tower + merger_passes * merger + llm_passes * llm


def balance_cost_model(shape: FlopModel, trainable: Sequence[str]) -> CostModel:
    """The data balance's `CostModel` in training FLOPs of this shape under a stage's trainable groups.

    Each coefficient is read off the family's FLOP functions (so the two never disagree): LLM FLOPs of
    one sample of L tokens are t*L + p*L(L+1)/2, vision FLOPs of one slice of P patches c*P + d*P^2.
    """
    passes = {  # the pass counts of training_flops
        "tower": 3 if "vision_tower" in trainable else 1,
        "merger": 1 + int("vision_tower" in trainable or "merger" in trainable) + int("merger" in trainable),
        "llm": 2 + int("llm" in trainable),
    }
    one, two = shape.llm_forward_flops([1], 1), shape.llm_forward_flops([2], 2)
    llm_pair = two - 2 * one  # f(2) - 2 f(1) = p (3p - 2p), the linear parts cancel
    llm_token = one - llm_pair
    (tower_one, _), (tower_two, _) = (shape.vision_forward_flops([(1, 1, n)]) for n in (1, 2))
    vision_pair = (tower_two - 2 * tower_one) / 2  # g(2) - 2 g(1) = 2d
    vision_patch = tower_one - vision_pair
    _, merger = shape.vision_forward_flops([(1, 1, shape.merge_unit)])
    return CostModel(
        llm_token=passes["llm"] * llm_token,
        llm_pair=passes["llm"] * llm_pair,
        vision_patch=passes["tower"] * vision_patch + passes["merger"] * merger / shape.merge_unit,
        vision_pair=passes["tower"] * vision_pair,
    )
