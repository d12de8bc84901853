"""Balancing the ranks of a step by cost, without talking: a shared schedule of cost quantiles.

A ZeRO-3 step waits for its slowest rank, and a pack's cost is not its token count: the vision
tower's work grows with the pack's patches (and quadratically with each image's), while a text-only
pack sends it none. Two parts:

- `CostModel`: the relative cost of a sample from its metadata alone (tokens, and each image's or
  video's patches per temporal slice): LLM work per token, LLM attention per (query, key) pair within
  the sample, vision work per patch, vision attention per pair within one slice. The coefficients are
  training FLOPs (`qvltrain.train.flops.balance_cost_model` derives them from the model's shape and
  the stage's trainable groups) times seconds per FLOP of each kind, calibrated from measured step
  phases (`python -m apps.bench.cost_fit`, docs/benchmarks.md). The default is Qwen2-VL-2B's FLOPs.
- `pick`: every reader keeps `data.balance_lookahead` planned packs and, for its rank's k-th pack,
  takes the one at quantile q_k of their costs, where q_k is a seeded draw that depends only on
  (seed, k), stratified over blocks of 16 packs. Every rank draws the same q_k, so at each
  micro-batch all ranks take a pack from the same place in their own cost distribution (ranks read
  different samples of the same mixture, so those places cost about the same) with no gather. Every
  cost band is taken equally often, so the lookahead stays a fair sample of the stream and no pack
  waits long; the packs themselves (budgets, fill, skips) are exactly the planner's, only their
  order changes.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from qvltrain.data.packer import PlanItem
from qvltrain.vision.budgets import ImageBudget
from qvltrain.vision.errors import VisualInputError
from qvltrain.vision.tokens import image_grid

Slices = Sequence[tuple[int, int]]
"""A sample's visual items as (temporal slices t, patches per slice h*w), in any order."""


@dataclass(frozen=True)
class CostModel:
    """Cost of a sample = sum of four terms; the units only need to agree (FLOPs, or seconds)."""

    llm_token: float = 9.2614e9
    """Per LLM token: decoder layers and LM head, forward and backward (Qwen2-VL-2B, all trainable)."""
    llm_pair: float = 5.16096e5
    """Per causal (query, key) pair within one sample, i.e. L(L+1)/2 pairs for L tokens."""
    vision_patch: float = 3.8350e9
    """Per ViT patch row: patch embedding, blocks and the merger's share, forward and backward."""
    vision_pair: float = 4.9152e5
    """Per (query, key) pair within one temporal slice of one image or video: (h*w)^2 per slice."""

    def __post_init__(self) -> None:
        for name in ("llm_token", "llm_pair", "vision_patch", "vision_pair"):
            if getattr(self, name) < 0:
                raise ValueError(f"cost model: {name}={getattr(self, name)} must be >= 0")

    def sample_cost(self, num_tokens: int, slices: Slices) -> float:
        """Cost of one sample of `num_tokens` LLM tokens with visual items `slices`."""
        cost = self.llm_token * num_tokens + self.llm_pair * num_tokens * (num_tokens + 1) / 2
        for num_slices, per_slice in slices:
            cost += num_slices * (self.vision_patch * per_slice + self.vision_pair * per_slice * per_slice)
        return cost

    def terms(self, num_tokens: int, slices: Slices) -> tuple[float, float, float, float]:
        """The four quantities the coefficients multiply (for calibration fits)."""
        patches = sum(t * hw for t, hw in slices)
        pairs = sum(t * hw * hw for t, hw in slices)
        return float(num_tokens), num_tokens * (num_tokens + 1) / 2, float(patches), float(pairs)

    def scaled(self, seconds_per_flop: Sequence[float]) -> CostModel:
        """This model with each coefficient times its calibrated seconds per FLOP (four numbers)."""
        a, b, c, d = seconds_per_flop
        return CostModel(self.llm_token * a, self.llm_pair * b, self.vision_patch * c, self.vision_pair * d)


def video_slices(num_patches: int, max_slice_patches: int) -> list[tuple[int, int]]:
    """Estimated slices of a video known only by its patch count: slices as large as a frame may be.

    A frame has at most `max_slice_patches` patch rows (the budget's max_pixels / 14^2); assuming full
    frames over-estimates the attention of small ones, never the patch work.
    """
    per_slice = max(1, min(num_patches, max_slice_patches))
    return [(max(1, round(num_patches / per_slice)), per_slice)]


QUANTILE_BLOCK = 16
"""Consecutive packs that take one pack from each of QUANTILE_BLOCK equal cost bands, in a seeded order."""


def target_quantile(seed: int, pack_index: int) -> float:
    """The cost quantile every rank takes for its `pack_index`-th pack (the same on every rank).

    Stratified: each block of QUANTILE_BLOCK packs visits every band once, so the lookahead loses
    packs evenly across its cost range (a plain uniform draw per pack balances 0.1-0.2 points worse
    and has worse worst steps, apps/bench/balance.py).
    """
    block, position = divmod(pack_index, QUANTILE_BLOCK)
    rng = random.Random(f"{seed}-balance-{block}")
    bands = list(range(QUANTILE_BLOCK))
    rng.shuffle(bands)
    # A uniform point inside the band, not its centre: every position, the cheapest and the dearest
    # pack included, is taken with positive probability, so no pack can wait forever.
    offsets = [rng.random() for _ in range(QUANTILE_BLOCK)]
    return (bands[position] + offsets[position]) / QUANTILE_BLOCK


def pick(costs: Sequence[float], quantile: float) -> int:
    """Index in `costs` of the pack at `quantile` of their order (ties: the earlier pack)."""
    order = sorted(range(len(costs)), key=lambda index: (costs[index], index))
    return order[min(len(order) - 1, int(quantile * len(order)))]


def take(ready: deque[list[PlanItem]], quantile: float) -> list[PlanItem]:
    """Remove and return the pack of `ready` at `quantile` of their costs (sum of the items' costs)."""
    index = pick([sum(item.cost for item in pack) for pack in ready], quantile)
    pack = ready[index]
    del ready[index]
    return pack


def planned_slices(
    record: dict, image_budget: ImageBudget, frame_patches: int, num_patches: int
) -> list[tuple[int, int]]:
    """A sample's slices from its metadata: each image's grid from `meta.image_sizes` under the
    budget when every visual item is an image with a size; otherwise `num_patches` as frames of at
    most `frame_patches` rows (`video_slices`)."""
    kinds = [
        item.get("type")
        for message in record.get("messages", [])
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for item in message["content"]
        if isinstance(item, dict) and item.get("type") in ("image", "video")
    ]
    sizes = (record.get("meta") or {}).get("image_sizes") or []
    if kinds and "video" not in kinds and len(sizes) == len(kinds):
        try:
            return [(t, h * w) for t, h, w in (image_grid(hh, ww, image_budget) for ww, hh in sizes)]
        except (VisualInputError, TypeError, ValueError):
            pass  # decoding will tell; until then the estimate below
    return video_slices(num_patches, frame_patches) if num_patches else []


def decoded_slices(patches) -> list[tuple[int, int]]:
    """Exact slices of a decoded sample (its `VisualPatches`)."""
    return [(t, h * w) for t, h, w in (item.grid_thw for item in patches)]
