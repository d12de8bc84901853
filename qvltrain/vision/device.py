"""Model side: a batch's uint8 pixels -> patch rows [P, 1176] normalised, in one fused pass per item.

The loader ships each image or video as its resized uint8 pixels (patches.py has the layouts),
concatenated flat. Here, on the GPU or the CPU, an item's pixels are viewed (no copy) as patches in
the reference row order [C=3][t=2][14][14], tubes and 2x2 merge windows outermost, and each value
becomes (u / 255 - mean_c) / std_c inside one addcmul that reads that permuted view and writes
straight into the output; an image's single stored frame is then copied into its second temporal
slot. The permutation costs nothing extra: the normalisation reads every byte once anyway.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from qvltrain.vision.layout import (
    CLIP_MEAN,
    CLIP_STD,
    MERGE_SIZE,
    PATCH_SIZE,
    ROW_WIDTH,
    TEMPORAL_PATCH_SIZE,
)
from qvltrain.vision.patches import IMAGE_CHANNELS_STORED, VisualPatches, pixels_shape


@functools.lru_cache(maxsize=8)
def _scale_and_bias(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel a, b with a*u + b == (u/255 - mean) / std, float32, shaped for `_patch_view`."""
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float64)
    std = torch.tensor(CLIP_STD, dtype=torch.float64)
    # Folded in float64, so the float32 result is within a few ulp of the reference's two steps.
    shape = (1, 1, 1, 1, 1, 3, 1, 1, 1)
    scale = (1.0 / (255.0 * std)).to(torch.float32).view(shape)
    bias = (-mean / std).to(torch.float32).view(shape)
    return scale.to(device), bias.to(device)


def item_num_bytes(grid_thw: Sequence[int], temporal_repeat: int) -> int:
    """Stored bytes of one item (patches.py): 784 per image patch (RGBX), 1176 per video tube patch."""
    return math.prod(pixels_shape(tuple(int(v) for v in grid_thw), temporal_repeat))


def _patch_view(stored: torch.Tensor, grid_thw: Sequence[int], temporal_repeat: int) -> torch.Tensor:
    """One item's flat uint8 pixels as (t, h/2, w/2, 2, 2, C, frames, 14, 14): patch rows in merge order.

    A view (no copy) of the layouts of patches.py: image [H, W, 4] (RGBX, one frame), video [T, 3, H, W].
    """
    t, h, w = (int(v) for v in grid_thw)
    windows_h, windows_w = h // MERGE_SIZE, w // MERGE_SIZE
    if temporal_repeat == TEMPORAL_PATCH_SIZE:
        # (window row, row in window, y, window col, col in window, x, RGBX) -> RGB, + a frame axis of 1
        image = stored.view(
            windows_h, MERGE_SIZE, PATCH_SIZE, windows_w, MERGE_SIZE, PATCH_SIZE, IMAGE_CHANNELS_STORED
        )[..., :3]
        return image.permute(0, 3, 1, 4, 6, 2, 5).unsqueeze(0).unsqueeze(6)
    # (tube, frame, C, window row, row in window, y, window col, col in window, x)
    video = stored.view(
        t, TEMPORAL_PATCH_SIZE, 3, windows_h, MERGE_SIZE, PATCH_SIZE, windows_w, MERGE_SIZE, PATCH_SIZE
    )
    return video.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)


def _normalise_into(
    stored: torch.Tensor, grid_thw: Sequence[int], temporal_repeat: int, out: torch.Tensor
) -> None:
    """One item's flat uint8 pixels -> `out` [t*h*w, 1176] (float32 or bf16): cut, normalised, frames made."""
    source = _patch_view(stored, grid_thw, temporal_repeat)
    frames_stored = TEMPORAL_PATCH_SIZE // temporal_repeat
    target = out.view(*source.shape[:6], TEMPORAL_PATCH_SIZE, PATCH_SIZE, PATCH_SIZE)
    scale, bias = _scale_and_bias(out.device)
    # a * u + b in one kernel, from the permuted pixels into the first temporal slot (both for video) ...
    torch.addcmul(bias, source, scale, out=target[:, :, :, :, :, :, :frames_stored])
    if frames_stored < TEMPORAL_PATCH_SIZE:
        # ... and an image's second frame as a plain copy, measured ~2x faster than computing a
        # broadcast source twice.
        slots = out.view(out.shape[0], 3, TEMPORAL_PATCH_SIZE, PATCH_SIZE * PATCH_SIZE)
        slots[:, :, frames_stored:] = slots[:, :, :frames_stored]


def to_pixel_values(
    pixels: torch.Tensor,
    grid_thw: torch.Tensor,
    temporal_repeat: torch.Tensor,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A batch's concatenated uint8 pixels -> pixel values [P, 1176] for the patch embedding.

    pixels: [B] uint8, the items' pixels flat, in grid order (`collate_patches`); grid_thw: [I, 3];
    temporal_repeat: [I] (2 image, 1 video). Output rows in grid order, each [C=3][t=2][14][14].
    Reads the (small) grid to the host once.
    """
    if pixels.dtype != torch.uint8 or pixels.dim() != 1:
        raise ValueError(f"pixels must be flat uint8 [B], got {pixels.dtype} {list(pixels.shape)}")
    grids = grid_thw.tolist()
    repeats = temporal_repeat.tolist()
    if len(grids) != len(repeats):
        raise ValueError(f"grid_thw has {len(grids)} items but temporal_repeat {len(repeats)}")
    sizes = [item_num_bytes(grid, repeat) for grid, repeat in zip(grids, repeats, strict=True)]
    if sum(sizes) != pixels.numel():
        raise ValueError(
            f"pixels has {pixels.numel()} bytes but grid_thw and temporal_repeat need {sum(sizes)}"
        )
    patches_per_item = [t * h * w for t, h, w in grids]
    out = torch.empty(sum(patches_per_item), ROW_WIDTH, dtype=dtype, device=pixels.device)
    out_start = stored_start = 0
    for grid, repeat, size, num_patches in zip(grids, repeats, sizes, patches_per_item, strict=True):
        _normalise_into(
            pixels[stored_start : stored_start + size], grid, repeat, out[out_start : out_start + num_patches]
        )
        out_start, stored_start = out_start + num_patches, stored_start + size
    return out


def collate_patches(items: Sequence[VisualPatches]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Items in token order -> (pixels [B] uint8, grid_thw [I, 3] int64, temporal_repeat [I] int64)."""
    pixels = (
        torch.cat([item.pixels.reshape(-1) for item in items]) if items else torch.empty(0, dtype=torch.uint8)
    )
    grid_thw = torch.tensor([item.grid_thw for item in items], dtype=torch.int64).reshape(-1, 3)
    temporal_repeat = torch.tensor([item.temporal_repeat for item in items], dtype=torch.int64)
    return pixels, grid_thw, temporal_repeat


def patches_to_pixel_values(patches: VisualPatches, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One item -> [t*h*w, 1176], as transformers' processors return them (parity, benchmarks)."""
    out = torch.empty(patches.num_patches, ROW_WIDTH, dtype=dtype, device=patches.pixels.device)
    _normalise_into(patches.pixels.reshape(-1), patches.grid_thw, patches.temporal_repeat, out)
    return out
