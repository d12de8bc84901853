"""M-RoPE position ids for one sample, under the paper's rule or transformers'.

Rules:
- text tokens: all three rows equal, counting up by one;
- a visual block of merged grid (t, h', w') = (t, h/merge, w/merge) starting when the counter is p:
  t-row = p + frame, h-row = p + row, w-row = p + column;
- after the block the counter continues at
  - "paper" (the default): p + max(t, h', w'), i.e. the block's largest position + 1. This is the
    Qwen2-VL paper's rule (section 2.1), the released weights' original code and vLLM's;
  - "transformers": p + max(h', w'), as transformers >= 5.3 `Qwen2VLModel.get_rope_index` does. The
    two differ only after a video with more tubes than max(h', w'): there the t-row of the video
    reaches past the next text position.
  Images (t = 1) give the same positions under both rules (docs/formats.md).

Computed run by run: the token types split into runs (text, or one visual block); a text run is a
range, a visual block a cached per-grid offset table plus its start. The Python loop runs over runs,
not tokens, and everything is numpy until the one tensor at the end (the loader calls this per sample).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

GridInput = torch.Tensor | Sequence[Sequence[int]] | None

POSITION_RULES = ("paper", "transformers")
"""How text continues after a visual block (module docstring); "paper" is the default everywhere."""


def check_position_rule(rule: str) -> str:
    if rule not in POSITION_RULES:
        raise ValueError(f"position_rule={rule!r}: expected one of {', '.join(POSITION_RULES)}")
    return rule


def _as_grid_list(grids: GridInput) -> list[tuple[int, int, int]]:
    if grids is None:
        return []
    if isinstance(grids, torch.Tensor):
        return [tuple(row) for row in grids.reshape(-1, 3).tolist()]
    return [tuple(int(value) for value in grid) for grid in grids]


@functools.lru_cache(maxsize=1024)
def _block_offsets(t: int, h: int, w: int) -> np.ndarray:
    """(t, h, w) offsets [3, t*h*w] of a merged grid's tokens in raster order (read-only, cached)."""
    frame, row, column = np.indices((t, h, w), dtype=np.int64).reshape(3, -1)
    offsets = np.stack([frame, row, column])
    offsets.setflags(write=False)
    return offsets


def mrope_positions(
    mm_token_type_ids: torch.Tensor | np.ndarray | Sequence[int],
    image_grid_thw: GridInput = None,
    video_grid_thw: GridInput = None,
    spatial_merge_size: int = 2,
    position_rule: str = "paper",
) -> torch.Tensor:
    """M-RoPE positions `[3, L]` for one unpadded sample (rows 1-3 of `sample_position_ids`).

    `mm_token_type_ids` is 0 for text, 1 for image pads and 2 for video pads (vision_start/end are
    text); grids are `(t, h, w)` BEFORE merging, in order of appearance per modality.
    """
    return sample_position_ids(
        mm_token_type_ids, image_grid_thw, video_grid_thw, spatial_merge_size, position_rule
    )[1:]


def sample_position_ids(
    mm_token_type_ids: torch.Tensor | np.ndarray | Sequence[int],
    image_grid_thw: GridInput = None,
    video_grid_thw: GridInput = None,
    spatial_merge_size: int = 2,
    position_rule: str = "paper",
) -> torch.Tensor:
    """`[4, L]` position ids of one sample as packs carry them (transformers' layout): row 0 text
    positions 0..L-1, rows 1-3 M-RoPE (t, h, w). Arguments as for `mrope_positions`."""
    if isinstance(mm_token_type_ids, torch.Tensor):
        mm_token_type_ids = mm_token_type_ids.numpy(force=True)
    token_types = np.asarray(mm_token_type_ids, dtype=np.int64).reshape(-1)  # [L]
    positions = np.empty((4, token_types.size), dtype=np.int64)
    positions[0] = np.arange(token_types.size)
    _mrope_into(
        positions[1:],
        token_types,
        image_grid_thw,
        video_grid_thw,
        spatial_merge_size,
        temporal_advances=check_position_rule(position_rule) == "paper",
    )
    return torch.from_numpy(positions)


def _mrope_into(
    positions: np.ndarray,
    token_types: np.ndarray,
    image_grid_thw: GridInput,
    video_grid_thw: GridInput,
    spatial_merge_size: int,
    temporal_advances: bool,
) -> None:
    """Fill `positions` [3, L] (rules in the module docstring; `temporal_advances`: the paper's)."""
    length = token_types.size
    grids_by_type = {1: _as_grid_list(image_grid_thw), 2: _as_grid_list(video_grid_thw)}
    next_grid = {1: 0, 2: 0}
    changes = (np.flatnonzero(token_types[1:] != token_types[:-1]) + 1).tolist()
    run_starts, run_ends = ([0, *changes], [*changes, length]) if length else ([], [])
    counter = 0
    for start, end in zip(run_starts, run_ends, strict=True):
        run_type = int(token_types[start])
        if run_type == 0:
            positions[:, start:end] = np.arange(counter, counter + end - start)
            counter += end - start
            continue
        grids = grids_by_type[run_type]
        if next_grid[run_type] >= len(grids):
            kind = "image" if run_type == 1 else "video"
            raise ValueError(f"more {kind} blocks in mm_token_type_ids than {kind} grids ({len(grids)})")
        t, h, w = grids[next_grid[run_type]]
        next_grid[run_type] += 1
        merged = (t, h // spatial_merge_size, w // spatial_merge_size)
        needed = merged[0] * merged[1] * merged[2]
        if end - start != needed:
            raise ValueError(
                f"visual block {next_grid[1] + next_grid[2] - 1} at token {start} has {end - start} pad tokens; its merged grid "
                f"{merged} needs {needed}"
            )
        np.add(_block_offsets(*merged), counter, out=positions[:, start:end])
        counter += max(merged) if temporal_advances else max(merged[1], merged[2])
    for run_type, used in next_grid.items():
        if used != len(grids_by_type[run_type]):
            raise ValueError(f"{len(grids_by_type[run_type])} grids of type {run_type} but {used} blocks")
