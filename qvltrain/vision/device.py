"""Model side: uint8 patch rows -> normalised [P, 1176] pixel values, in one fused step per run.

The loader ships uint8 rows (see patches.py for the layout); here, on the GPU or the CPU, each
value becomes (u / 255 - mean_c) / std_c and an image's single stored frame is broadcast to both
temporal slots, all inside one addcmul that writes straight into the output. A batch concatenates
items as uint8 rows of 588 bytes (an image patch is 1 such row, a video tube patch 2), in the order
of its grid_thw, so images and videos mix freely; see `collate_patches`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from qvltrain.vision.layout import (
    CLIP_MEAN,
    CLIP_STD,
    FRAME_BYTES,
    PATCH_SIZE,
    ROW_WIDTH,
    TEMPORAL_PATCH_SIZE,
)
from qvltrain.vision.patches import VisualPatches

_PATCH_AREA = PATCH_SIZE * PATCH_SIZE


@functools.lru_cache(maxsize=8)
def _scale_and_bias(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel a, b with a*u + b == (u/255 - mean) / std, shaped [1, 3, 1, 1] float32."""
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float64)
    std = torch.tensor(CLIP_STD, dtype=torch.float64)
    # Folded in float64, so the float32 result is within a few ulp of the reference's two steps.
    scale = (1.0 / (255.0 * std)).to(torch.float32).view(1, 3, 1, 1)
    bias = (-mean / std).to(torch.float32).view(1, 3, 1, 1)
    return scale.to(device), bias.to(device)


def _normalise_into(stored: torch.Tensor, temporal_repeat: int, out: torch.Tensor) -> None:
    """uint8 stored rows of one kind -> `out` [n, 1176] (float32 or bf16), normalised, frames made."""
    num_patches = out.shape[0]
    frames_stored = TEMPORAL_PATCH_SIZE // temporal_repeat
    source = stored.reshape(num_patches, 3, frames_stored, _PATCH_AREA)
    target = out.view(num_patches, 3, TEMPORAL_PATCH_SIZE, _PATCH_AREA)
    scale, bias = _scale_and_bias(out.device)
    # a * u + b in one kernel, into the first temporal slot (both slots for video) ...
    torch.addcmul(bias, source, scale, out=target[:, :, :frames_stored])
    if frames_stored < TEMPORAL_PATCH_SIZE:
        # ... and an image's second frame as a plain copy, measured ~2x faster than computing a
        # broadcast source twice.
        target[:, :, frames_stored:] = target[:, :, :frames_stored]


def rows_to_pixel_values(
    pixel_rows: torch.Tensor,
    grid_thw: torch.Tensor,
    temporal_repeat: torch.Tensor,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Concatenated uint8 rows of a batch -> pixel values [P, 1176] for the patch embedding.

    pixel_rows: [R, 588] uint8, items in grid order; an item with temporal_repeat 2 (image) has
        t*h*w rows, one with temporal_repeat 1 (video) 2*t*h*w rows (its [C][t][14][14] tube rows
        split in two). grid_thw: [I, 3]; temporal_repeat: [I]. Output row order = [C=3][t=2][14][14].
    Reads the (small) grid to the host once; consecutive items of one kind share one kernel.
    """
    if pixel_rows.dtype != torch.uint8 or pixel_rows.dim() != 2 or pixel_rows.shape[1] != FRAME_BYTES:
        raise ValueError(
            f"pixel_rows must be uint8 [R, {FRAME_BYTES}], got {pixel_rows.dtype} {list(pixel_rows.shape)}"
        )
    patches_per_item = grid_thw.prod(dim=-1).tolist()
    repeats = temporal_repeat.tolist()
    if len(patches_per_item) != len(repeats):
        raise ValueError(f"grid_thw has {len(patches_per_item)} items but temporal_repeat {len(repeats)}")
    stored_per_item = [n * TEMPORAL_PATCH_SIZE // r for n, r in zip(patches_per_item, repeats, strict=True)]
    if sum(stored_per_item) != pixel_rows.shape[0]:
        raise ValueError(
            f"pixel_rows has {pixel_rows.shape[0]} rows but grid_thw and temporal_repeat need {sum(stored_per_item)}"
        )
    out = torch.empty(sum(patches_per_item), ROW_WIDTH, dtype=dtype, device=pixel_rows.device)
    out_start = stored_start = 0
    index = 0
    while index < len(repeats):
        # Merge a run of items with the same repeat: one kernel for all the images in a row.
        end = index
        while end < len(repeats) and repeats[end] == repeats[index]:
            end += 1
        num_patches, num_stored = sum(patches_per_item[index:end]), sum(stored_per_item[index:end])
        _normalise_into(
            pixel_rows[stored_start : stored_start + num_stored],
            repeats[index],
            out[out_start : out_start + num_patches],
        )
        out_start, stored_start, index = out_start + num_patches, stored_start + num_stored, end
    return out


def collate_patches(items: Sequence[VisualPatches]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Items in token order -> (pixel_rows [R, 588] uint8, grid_thw [I, 3] int64, temporal_repeat [I] int64)."""
    if not items:
        return (
            torch.empty(0, FRAME_BYTES, dtype=torch.uint8),
            torch.empty(0, 3, dtype=torch.int64),
            torch.empty(0, dtype=torch.int64),
        )
    pixel_rows = torch.cat([item.rows.reshape(-1, FRAME_BYTES) for item in items])
    grid_thw = torch.tensor([item.grid_thw for item in items], dtype=torch.int64)
    temporal_repeat = torch.tensor([item.temporal_repeat for item in items], dtype=torch.int64)
    return pixel_rows, grid_thw, temporal_repeat


def patches_to_pixel_values(patches: VisualPatches, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One item's rows -> [t*h*w, 1176], as transformers' processors return them (parity, benchmarks)."""
    out = torch.empty(patches.num_patches, ROW_WIDTH, dtype=dtype, device=patches.rows.device)
    _normalise_into(patches.rows, patches.temporal_repeat, out)
    return out
