"""Qwen2.5-VL's vision tower run packed: many images and video tubes in one call, window attention
within each frame's 112-px windows, full attention within each frame at `fullatt_block_indexes`.

The window reorder: a frame of h' x w' merged tokens (2x2 patches each) is cut into windows of
`window_size / 28` = 4 x 4 merged tokens (8 x 8 patches) from the top-left, the last row and column
of windows cut short at the frame's edge. The tower's rows are permuted so each window's patches are
contiguous (windows in raster order, tokens inside a window in raster order); the window blocks
attend within `cu_window_seqlens`, the full blocks within `cu_seqlens` (one segment per frame:
the reorder never moves a patch out of its frame). The merger's outputs are permuted back, so the
LLM receives merged tokens in raster order per frame, as the pad tokens expect. No segment ever
spans two frames, two images or two videos: nothing leaks between the items of a pack.

transformers' `Qwen2_5_VisionTransformerPretrainedModel.forward` computes the same layout per call
(tests/model/qwen2_5_vl/test_vision.py checks both agree); this one is numpy, cached per grid, and
runs the blocks itself, so a frozen tower runs under no_grad with only the merger trained.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers.vision_utils import get_vision_position_ids


@dataclass(frozen=True)
class WindowLayout:
    """Where each patch goes and which patches attend together, for a list of grids."""

    window_index: torch.Tensor  # [N] int64: merged token (raster order) at each window-order slot
    reverse_index: torch.Tensor  # [N] int64: window-order slot of each merged token (argsort)
    cu_window_seqlens: torch.Tensor  # [W+1] int32: window boundaries in patches (window order)
    cu_seqlens: torch.Tensor  # [F+1] int32: frame boundaries in patches (full-attention blocks)
    max_window_seqlen: int
    max_seqlen: int


@functools.lru_cache(maxsize=1024)
def _frame_windows(height: int, width: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """One frame of height x width merged tokens: (raster index of each window-order slot, window sizes)."""
    rows, columns = np.indices((height, width)).reshape(2, -1)
    window_row, window_column = rows // side, columns // side
    order = np.lexsort((columns, rows, window_column, window_row))  # last key sorts first
    window_of_slot = (window_row * -(-width // side) + window_column)[order]
    sizes = np.bincount(window_of_slot)
    order.setflags(write=False)
    sizes.setflags(write=False)
    return order, sizes


def window_layout(
    grids: Sequence[Sequence[int]] | torch.Tensor,
    window_size: int,
    patch_size: int = 14,
    spatial_merge_size: int = 2,
    device: torch.device | str | None = None,
) -> WindowLayout:
    """The packed layout of all `grids` (t, h, w in patches before merging), in their order."""
    if isinstance(grids, torch.Tensor):
        grids = grids.reshape(-1, 3).tolist()
    side = window_size // spatial_merge_size // patch_size  # merged tokens per window side
    unit = spatial_merge_size * spatial_merge_size  # patches per merged token
    indices, window_sizes, frame_sizes = [], [], []
    offset = 0
    for t, h, w in grids:
        merged_h, merged_w = int(h) // spatial_merge_size, int(w) // spatial_merge_size
        order, sizes = _frame_windows(merged_h, merged_w, side)
        per_frame = merged_h * merged_w
        for frame in range(int(t)):
            indices.append(order + offset + frame * per_frame)
            window_sizes.append(sizes)
            frame_sizes.append(per_frame)
        offset += int(t) * per_frame
    window_index = torch.from_numpy(np.concatenate(indices)) if indices else torch.zeros(0, dtype=torch.long)
    window_patches = np.concatenate(window_sizes) * unit if window_sizes else np.zeros(0, np.int64)
    frame_patches = np.asarray(frame_sizes, dtype=np.int64) * unit
    as_cu = lambda sizes: torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))  # noqa: E731
    return WindowLayout(
        window_index=window_index.to(device),
        reverse_index=torch.argsort(window_index).to(device),
        cu_window_seqlens=as_cu(window_patches).to(device),
        cu_seqlens=as_cu(frame_patches).to(device),
        max_window_seqlen=int(window_patches.max(initial=0)),
        max_seqlen=int(frame_patches.max(initial=0)),
    )


def _reorder(rows: torch.Tensor, index: torch.Tensor, unit: int) -> torch.Tensor:
    """[P, ...] patch rows permuted by merged token (each token's `unit` patches move together)."""
    return rows.unflatten(0, (-1, unit))[index].flatten(0, 1)


def tower_blocks(visual, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
    """Patch embedding and every ViT block over a pack: hidden states [P, D] back in merge order.

    Undoing the window reorder before the merger instead of after it gives the same features: the
    merger works on each merged token's 4 rows alone, and the reorder moves those 4 rows together.
    """
    config = visual.config
    layout = window_layout(
        grid_thw, config.window_size, config.patch_size, config.spatial_merge_size, pixel_values.device
    )
    unit = visual.spatial_merge_size**2
    position_ids = get_vision_position_ids(grid_thw, visual.spatial_merge_size, kwargs={})  # [P, 2]
    hidden = _reorder(visual.patch_embed(pixel_values), layout.window_index, unit)
    cos, sin = visual.rotary_pos_emb(hidden, position_ids)
    position_embeddings = tuple(_reorder(x, layout.window_index, unit) for x in (cos, sin))
    full_blocks = set(visual.fullatt_block_indexes)
    for index, block in enumerate(visual.blocks):
        full = index in full_blocks
        hidden = block(
            hidden,
            cu_seqlens=layout.cu_seqlens if full else layout.cu_window_seqlens,
            max_seqlen=layout.max_seqlen if full else layout.max_window_seqlen,
            position_embeddings=position_embeddings,
        )
    return _reorder(hidden, layout.reverse_index, unit)


def packed_tower(visual, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
    """The whole tower over a pack: merged features [N, out] in merge order (token order)."""
    return visual.merger(tower_blocks(visual, pixel_values, grid_thw))
