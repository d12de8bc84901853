"""Qwen2.5-VL generation with the positions a model was trained with (absolute time included).

transformers' `Qwen2_5_VLModel.get_rope_index` resumes text after a visual block at start +
max(h', w') (its "transformers" rule); the released Qwen2.5-VL code, and our default "paper" rule,
resume at the block's largest position + 1 (qvltrain/text/positions.py). `use_position_rule` makes
prefill and every decoding step follow the rule the model was trained with:

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder)
    use_position_rule(model, "paper")   # build.load_pretrained does this with the recorded rule
    model.generate(input_ids=..., mm_token_type_ids=..., pixel_values_videos=..., video_grid_thw=...,
                   second_per_grid_ts=...)
"""

from __future__ import annotations

import torch

from qvltrain.text.positions import check_position_rule, mrope_positions


def rope_index(
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    second_per_grid_ts: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    *,
    position_rule: str,
    spatial_merge_size: int,
    tokens_per_second: int,
    **unused,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`get_rope_index`'s contract under `position_rule`: positions `[3, B, L]` (0 under padding) and
    per-row deltas `[B, 1]` such that the token after the prompt sits at `L + delta` = largest + 1.

    Grids (and each video's `second_per_grid_ts`, 1.0 when not given, as transformers assumes) are
    those of the whole batch in order; each row takes as many as its pad tokens need.
    """
    batch, length = input_ids.shape
    positions = torch.zeros(3, batch, length, dtype=torch.long, device=input_ids.device)
    deltas = torch.zeros(batch, 1, dtype=torch.long, device=input_ids.device)
    grids = {1: _grid_list(image_grid_thw), 2: _grid_list(video_grid_thw)}
    seconds = (
        [float(value) for value in second_per_grid_ts.reshape(-1).tolist()]
        if second_per_grid_ts is not None
        else [1.0] * len(grids[2])
    )
    used = {1: 0, 2: 0}
    for row in range(batch):
        keep = (
            attention_mask[row].bool() if attention_mask is not None else torch.ones(length, dtype=torch.bool)
        )
        types = mm_token_type_ids[row][keep.to(mm_token_type_ids.device)].cpu()
        row_grids = {}
        for kind in (1, 2):
            tokens, start = int((types == kind).sum()), used[kind]
            while tokens > 0:
                t, h, w = grids[kind][used[kind]]
                tokens -= t * h * w // spatial_merge_size**2
                used[kind] += 1
            row_grids[kind] = (start, used[kind])
        image_range, video_range = row_grids[1], row_grids[2]
        row_positions = mrope_positions(
            types,
            grids[1][slice(*image_range)],
            grids[2][slice(*video_range)],
            spatial_merge_size,
            position_rule,
            tokens_per_second=tokens_per_second,
            video_second_per_grid=seconds[slice(*video_range)],
        )
        positions[:, row, keep.to(positions.device)] = row_positions.to(positions.device)
        largest = int(row_positions.max()) if row_positions.numel() else -1
        deltas[row, 0] = largest + 1 - int(keep.sum())
    return positions, deltas


def _grid_list(grids: torch.Tensor | None) -> list[tuple[int, int, int]]:
    return [] if grids is None else [tuple(int(v) for v in grid) for grid in grids.reshape(-1, 3).tolist()]


def use_position_rule(model, position_rule: str):
    """Make `model` (a Qwen2_5_VLForConditionalGeneration) compute positions under `position_rule`."""
    check_position_rule(position_rule)
    inner = model.model
    vision_config = inner.config.vision_config
    merge, tokens_per_second = vision_config.spatial_merge_size, vision_config.tokens_per_second

    def get_rope_index(*args, **kwargs):
        return rope_index(
            *args,
            position_rule=position_rule,
            spatial_merge_size=merge,
            tokens_per_second=tokens_per_second,
            **kwargs,
        )

    inner.get_rope_index = get_rope_index
    return model
