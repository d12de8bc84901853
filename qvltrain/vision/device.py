"""Model side: a batch's uint8 pixels -> patch rows [P, 1176] normalised, in one fused pass per item.

The loader ships each image or video as its resized uint8 pixels (patches.py has the layouts), one
tensor per item, never concatenated on the host. Here an item's pixels are viewed (no copy) as
patches in the reference row order [C=3][t=2][14][14], tubes and 2x2 merge windows outermost, and
each value becomes (u / 255 - mean_c) / std_c inside one addcmul that reads that permuted view and
writes straight into the output; an image's single stored frame is then copied into its second
temporal slot. On the GPU the permutation rides on the read the normalisation does anyway; on the
CPU the bytes are gathered first (faster there, see `_normalise_into`).
"""

from __future__ import annotations

import functools
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
    if source.device.type == "cpu":
        # The CPU's float kernel reads a permuted uint8 view slowly: gathering the bytes first and
        # running it on contiguous input is faster (apps/bench/vision.py measures the device step).
        source = source.contiguous()
    frames_stored = TEMPORAL_PATCH_SIZE // temporal_repeat
    target = out.view(*source.shape[:6], TEMPORAL_PATCH_SIZE, PATCH_SIZE, PATCH_SIZE)
    scale, bias = _scale_and_bias(out.device)
    # a * u + b in one kernel, from the permuted pixels into the first temporal slot (both for video) ...
    torch.addcmul(bias, source, scale, out=target[:, :, :, :, :, :, :frames_stored])
    if frames_stored < TEMPORAL_PATCH_SIZE:
        # ... and an image's second frame as a plain copy, cheaper than computing a broadcast
        # source twice.
        slots = out.view(out.shape[0], 3, TEMPORAL_PATCH_SIZE, PATCH_SIZE * PATCH_SIZE)
        slots[:, :, frames_stored:] = slots[:, :, :frames_stored]


def to_pixel_values(
    pixels: Sequence[torch.Tensor],
    grid_thw: torch.Tensor,
    temporal_repeat: torch.Tensor,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A batch's uint8 pixels, one tensor per item -> pixel values [P, 1176] for the patch embedding.

    pixels: per item in grid order, in the layouts of patches.py (`collate_patches`); grid_thw:
    [I, 3]; temporal_repeat: [I] (2 image, 1 video). Output rows in grid order, each
    [C=3][t=2][14][14]. Reads the (small) grid to the host once; one fused kernel per item.
    """
    grids = [tuple(grid) for grid in grid_thw.tolist()]
    repeats = temporal_repeat.tolist()
    if not len(pixels) == len(grids) == len(repeats):
        raise ValueError(
            f"{len(pixels)} pixel tensors, {len(grids)} grid_thw rows and {len(repeats)} temporal_repeat "
            "values: one of each per image or video is needed"
        )
    for index, (item, grid, repeat) in enumerate(zip(pixels, grids, repeats, strict=True)):
        expected = pixels_shape(grid, repeat)
        if item.dtype != torch.uint8 or tuple(item.shape) != expected:
            raise ValueError(
                f"item {index}: pixels {item.dtype} {list(item.shape)}, but grid {grid} with "
                f"temporal_repeat {repeat} needs uint8 {list(expected)}"
            )
    patches_per_item = [t * h * w for t, h, w in grids]
    device = pixels[0].device if len(pixels) else grid_thw.device
    out = torch.empty(sum(patches_per_item), ROW_WIDTH, dtype=dtype, device=device)
    start = 0
    for item, grid, repeat, num_patches in zip(pixels, grids, repeats, patches_per_item, strict=True):
        _normalise_into(item.reshape(-1), grid, repeat, out[start : start + num_patches])
        start += num_patches
    return out


def collate_patches(
    items: Sequence[VisualPatches],
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Items in token order -> (pixels, one uint8 tensor per item, grid_thw [I, 3], temporal_repeat [I]).

    Nothing is copied: a batch carries each item's pixels as the loader made them.
    """
    pixels = [item.pixels for item in items]
    grid_thw = torch.tensor([item.grid_thw for item in items], dtype=torch.int64).reshape(-1, 3)
    temporal_repeat = torch.tensor([item.temporal_repeat for item in items], dtype=torch.int64)
    return pixels, grid_thw, temporal_repeat


def patches_to_pixel_values(patches: VisualPatches, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One item -> [t*h*w, 1176], as transformers' processors return them (parity, benchmarks)."""
    pixels, grid_thw, temporal_repeat = collate_patches([patches])
    return to_pixel_values(pixels, grid_thw, temporal_repeat, dtype=dtype)
