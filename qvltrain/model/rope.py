"""M-RoPE position ids for one sample, as transformers' `Qwen2VLModel.get_rope_index` computes them.

Rules (transformers 5.23, the oracle the tests compare with):
- text tokens: all three rows equal, counting up by one;
- a visual block of merged grid (t, h', w') = (t, h/merge, w/merge) starting when the counter is p:
  t-row = p + frame, h-row = p + row, w-row = p + column;
- after the block the counter continues at p + max(h', w'). For images this is (max so far) + 1;
  for videos with more tubes than max(h', w') the t-row reaches further than the next text position.
  Qwen2-VL's original code resumed at (max so far) + 1 in that case; transformers 5.x does not, and
  we follow transformers so training matches its inference (docs/formats.md).

Vectorised over tokens: the only Python loop runs over visual blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

GridInput = torch.Tensor | Sequence[Sequence[int]] | None


def _as_grid_tensor(grids: GridInput) -> torch.Tensor:
    if grids is None:
        return torch.zeros(0, 3, dtype=torch.long)
    grid_tensor = torch.as_tensor(grids, dtype=torch.long)
    return grid_tensor.reshape(-1, 3)


def mrope_positions(
    mm_token_type_ids: torch.Tensor | Sequence[int],
    image_grid_thw: GridInput = None,
    video_grid_thw: GridInput = None,
    spatial_merge_size: int = 2,
) -> torch.Tensor:
    """M-RoPE positions `[3, L]` for one unpadded sample.

    `mm_token_type_ids` is 0 for text, 1 for image pads and 2 for video pads (vision_start/end are
    text); grids are `(t, h, w)` BEFORE merging, in order of appearance per modality.
    """
    token_types = torch.as_tensor(mm_token_type_ids, dtype=torch.long).reshape(-1)  # [L]
    length = token_types.numel()
    if length == 0:
        return torch.zeros(3, 0, dtype=torch.long)
    grids_by_type = {1: _as_grid_tensor(image_grid_thw), 2: _as_grid_tensor(video_grid_thw)}

    is_visual = token_types != 0  # [L]
    previous_type = torch.cat([token_types.new_zeros(1), token_types[:-1]])
    block_starts = torch.nonzero(is_visual & (token_types != previous_type)).flatten()  # [B]
    block_types = token_types[block_starts].tolist()

    # Merged grid of every block, taking each modality's grids in order.
    next_grid = {1: 0, 2: 0}
    merged_grids = []
    for block_type in block_types:
        grids = grids_by_type[block_type]
        if next_grid[block_type] >= len(grids):
            kind = "image" if block_type == 1 else "video"
            raise ValueError(f"more {kind} blocks in mm_token_type_ids than {kind} grids ({len(grids)})")
        t, h, w = grids[next_grid[block_type]].tolist()
        next_grid[block_type] += 1
        merged_grids.append((t, h // spatial_merge_size, w // spatial_merge_size))
    for block_type, used in next_grid.items():
        if used != len(grids_by_type[block_type]):
            raise ValueError(f"{len(grids_by_type[block_type])} grids of type {block_type} but {used} blocks")

    merged = torch.tensor(merged_grids, dtype=torch.long).reshape(-1, 3)  # [B, 3]
    block_lengths = merged.prod(dim=1)  # [B]
    advances = merged[:, 1:].max(dim=1).values if len(merged_grids) else block_lengths  # [B]

    # Block index of every token (-1 before the first block) and what happened before it.
    block_index = torch.cumsum(torch.zeros(length, dtype=torch.long).index_fill_(0, block_starts, 1), 0) - 1
    visual_before = torch.cumsum(is_visual.long(), 0) - is_visual.long()  # [L] visual tokens before i
    advances_through = torch.cat([advances.new_zeros(1), torch.cumsum(advances, 0)])  # [B+1]
    # Text after block b has advanced through blocks 0..b; a token inside block b through 0..b-1.
    completed_blocks = block_index + 1 - is_visual.long()
    counter = torch.arange(length) - visual_before + advances_through[completed_blocks]  # [L]

    positions = counter.unsqueeze(0).repeat(3, 1)  # [3, L]
    if len(merged_grids):
        visual_positions = torch.nonzero(is_visual).flatten()  # [V]
        visual_blocks = block_index[visual_positions]  # [V]
        offset_in_block = visual_positions - block_starts[visual_blocks]  # [V]
        pads_per_block = torch.bincount(visual_blocks, minlength=len(merged_grids))  # [B]
        mismatched = torch.nonzero(pads_per_block != block_lengths).flatten().tolist()
        if mismatched:
            block = mismatched[0]
            raise ValueError(
                f"visual block {block} at token {int(block_starts[block])} has {int(pads_per_block[block])} "
                f"pad tokens; its merged grid {tuple(merged[block].tolist())} needs {int(block_lengths[block])}"
            )
        grid_h_w = merged[visual_blocks, 1] * merged[visual_blocks, 2]  # [V]
        grid_w = merged[visual_blocks, 2]
        base = counter[visual_positions]  # [V] counter at the block start, constant within a block
        positions[0, visual_positions] = base + offset_in_block // grid_h_w
        positions[1, visual_positions] = base + (offset_in_block % grid_h_w) // grid_w
        positions[2, visual_positions] = base + offset_in_block % grid_w
    return positions


def text_positions(length: int) -> torch.Tensor:
    """Plain 1-D positions `[L]`: 0..L-1 (row 0 of the packed `[4, L]` position ids)."""
    return torch.arange(length, dtype=torch.long)


def position_ids_with_text_row(mrope: torch.Tensor) -> torch.Tensor:
    """Stack text positions on top of M-RoPE positions: `[3, L]` -> `[4, L]` as transformers packs them."""
    return torch.cat([text_positions(mrope.shape[-1]).unsqueeze(0), mrope], dim=0)
