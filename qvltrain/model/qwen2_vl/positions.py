"""Qwen2-VL generation with the positions a model was trained with.

transformers computes M-RoPE positions itself during `generate` (prefill through
`Qwen2VLModel.get_rope_index`, then each new token at `cache position + rope_deltas`), always under its
own rule. A model trained here under the paper's rule (docs/formats.md) would see other positions
than in training after any video with more tubes than max(h', w'). `use_position_rule` replaces the
model's `get_rope_index` by ours for the given rule, so prefill and every decoding step follow it:

    model = Qwen2VLForConditionalGeneration.from_pretrained(folder)
    use_position_rule(model, "paper")   # build.load_pretrained does this with the recorded rule
    model.generate(input_ids=..., mm_token_type_ids=..., pixel_values=..., image_grid_thw=...)
"""

from __future__ import annotations

import torch

from qvltrain.text.positions import check_position_rule, mrope_positions


def rope_index(
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    *,
    position_rule: str,
    spatial_merge_size: int,
    **unused,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`get_rope_index`'s contract under `position_rule`: positions `[3, B, L]` (0 under padding) and
    per-row deltas `[B, 1]` such that the token after the prompt sits at `L + delta` = largest + 1.

    Grids are those of the whole batch in order; each row takes as many as its pad tokens need.
    """
    batch, length = input_ids.shape
    positions = torch.zeros(3, batch, length, dtype=torch.long, device=input_ids.device)
    deltas = torch.zeros(batch, 1, dtype=torch.long, device=input_ids.device)
    grids = {1: _grid_list(image_grid_thw), 2: _grid_list(video_grid_thw)}
    used = {1: 0, 2: 0}
    for row in range(batch):
        keep = (
            attention_mask[row].bool()
            if attention_mask is not None
            else torch.ones(length, dtype=torch.bool, device=input_ids.device)
        )
        types = mm_token_type_ids[row][keep].cpu()
        row_grids = {}
        for kind in (1, 2):
            tokens, start = int((types == kind).sum()), used[kind]
            while tokens > 0:
                t, h, w = grids[kind][used[kind]]
                tokens -= t * h * w // spatial_merge_size**2
                used[kind] += 1
            row_grids[kind] = grids[kind][start : used[kind]]
        row_positions = mrope_positions(types, row_grids[1], row_grids[2], spatial_merge_size, position_rule)
        positions[:, row, keep] = row_positions.to(positions.device)
        largest = int(row_positions.max()) if row_positions.numel() else -1
        deltas[row, 0] = largest + 1 - int(keep.sum())
    return positions, deltas


def _grid_list(grids: torch.Tensor | None) -> list[tuple[int, int, int]]:
    return [] if grids is None else [tuple(int(v) for v in grid) for grid in grids.reshape(-1, 3).tolist()]


def use_position_rule(model, position_rule: str):
    """Make `model` (a Qwen2VLForConditionalGeneration) compute generation positions under `position_rule`.

    The M-RoPE positions themselves are `qvltrain.text.positions` (the loader computes the same ones
    per sample); this only hands them to transformers' generation loop.
    """
    check_position_rule(position_rule)
    inner = model.model
    merge = inner.config.vision_config.spatial_merge_size

    def get_rope_index(*args, **kwargs):
        return rope_index(*args, position_rule=position_rule, spatial_merge_size=merge, **kwargs)

    inner.get_rope_index = get_rope_index
    return model
