"""M-RoPE position ids for one sample, under the paper's rule or transformers'.

Rules:
- text tokens: all three rows equal, counting up by one;
- a visual block of merged grid (t, h', w') = (t, h/merge, w/merge) starting when the counter is p:
  t-row = p + time(frame), h-row = p + row, w-row = p + column, where time(frame) is
  - Qwen2-VL (no `tokens_per_second`): the tube index, 0, 1, 2, ...;
  - Qwen2.5-VL (absolute time): floor(frame * tokens_per_second * second_per_grid_t) with
    second_per_grid_t = 2 / sampled fps, the seconds one tube of two frames spans. The product is
    taken in float32 as transformers' `Qwen2_5_VLModel.get_rope_index` takes it (tokens_per_second
    times the float32 `second_per_grid_ts` entry, then times the tube index, then truncated), so
    fractional steps (e.g. 25/3 per tube) land on the same integers. Images keep time 0.
- after the block the counter continues at
  - "paper" (the default): p + max(time(t - 1) + 1, h', w'), i.e. the block's largest position + 1.
    This is the Qwen2-VL paper's rule (section 2.1), the released weights' original code and vLLM's;
    the released Qwen2.5-VL code (transformers 4.49-4.5x `get_rope_index`) does the same: text
    after any block starts at the largest position so far + 1, time-scaled t-row included;
  - "transformers": p + max(h', w'), as transformers >= 5.3 `get_rope_index` does for both
    families. The two differ only after a video whose t-row reaches past max(h', w').
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
    *,
    tokens_per_second: float | None = None,
    video_second_per_grid: Sequence[float] | None = None,
) -> torch.Tensor:
    """M-RoPE positions `[3, L]` for one unpadded sample (rows 1-3 of `sample_position_ids`).

    `mm_token_type_ids` is 0 for text, 1 for image pads and 2 for video pads (vision_start/end are
    text); grids are `(t, h, w)` BEFORE merging, in order of appearance per modality.
    `tokens_per_second` (Qwen2.5-VL) turns on absolute time; `video_second_per_grid` then gives each
    video's seconds per tube (module docstring).
    """
    return sample_position_ids(
        mm_token_type_ids,
        image_grid_thw,
        video_grid_thw,
        spatial_merge_size,
        position_rule,
        tokens_per_second=tokens_per_second,
        video_second_per_grid=video_second_per_grid,
    )[1:]


def sample_position_ids(
    mm_token_type_ids: torch.Tensor | np.ndarray | Sequence[int],
    image_grid_thw: GridInput = None,
    video_grid_thw: GridInput = None,
    spatial_merge_size: int = 2,
    position_rule: str = "paper",
    *,
    tokens_per_second: float | None = None,
    video_second_per_grid: Sequence[float] | None = None,
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
        video_time_steps=_video_time_steps(video_grid_thw, tokens_per_second, video_second_per_grid),
    )
    return torch.from_numpy(positions)


def _video_time_steps(
    video_grid_thw: GridInput, tokens_per_second: float | None, video_second_per_grid: Sequence[float] | None
) -> list[np.float32] | None:
    """Per video, the float32 temporal position step per tube (None: Qwen2-VL's tube index)."""
    if tokens_per_second is None:
        if video_second_per_grid is not None:
            raise ValueError(
                "video_second_per_grid is given but tokens_per_second is None (Qwen2-VL has no time)"
            )
        return None
    num_videos = len(_as_grid_list(video_grid_thw))
    seconds = list(video_second_per_grid) if video_second_per_grid is not None else []
    if len(seconds) != num_videos:
        raise ValueError(
            f"{num_videos} video grid(s) but {len(seconds)} second_per_grid value(s); absolute-time "
            "positions need one per video"
        )
    for index, value in enumerate(seconds):
        if not value > 0:
            raise ValueError(f"video {index}: second_per_grid={value} must be > 0")
    # transformers multiplies the int tokens_per_second by the float32 tensor entry: float32.
    return [np.float32(tokens_per_second) * np.float32(value) for value in seconds]


def temporal_offsets(num_tubes: int, time_step: np.float32 | None) -> np.ndarray:
    """t-row offsets of a video's tubes: the index, or floor(index * step) in float32 (absolute time)."""
    if time_step is None:
        return np.arange(num_tubes, dtype=np.int64)
    return (np.arange(num_tubes, dtype=np.float32) * np.float32(time_step)).astype(np.int64)


def _mrope_into(
    positions: np.ndarray,
    token_types: np.ndarray,
    image_grid_thw: GridInput,
    video_grid_thw: GridInput,
    spatial_merge_size: int,
    temporal_advances: bool,
    video_time_steps: list[np.float32] | None = None,
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
        block = positions[:, start:end]
        np.add(_block_offsets(*merged), counter, out=block)
        last_time = merged[0] - 1
        if run_type == 2 and video_time_steps is not None:
            times = temporal_offsets(merged[0], video_time_steps[next_grid[2] - 1])
            block[0] = np.repeat(times, merged[1] * merged[2]) + counter
            last_time = int(times[-1])
        counter += (
            max(last_time + 1, merged[1], merged[2]) if temporal_advances else max(merged[1], merged[2])
        )
    for run_type, used in next_grid.items():
        if used != len(grids_by_type[run_type]):
            raise ValueError(f"{len(grids_by_type[run_type])} grids of type {run_type} but {used} blocks")
