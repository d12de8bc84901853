"""VisualPatches: one image or video as the loader carries it, resized uint8 pixels not yet cut into patches.

The cut into 14x14 patch rows in merge order is a pure permutation, so the loader leaves it to the
device step (device.py), which reads the pixels through a permuted view while it normalises them:
one pass over the pixels there instead of two reordering copies per sample here. The loader's per
image work stays what it cannot avoid (decode, resize, one copy out of PIL).

Layouts, both exactly as the resize hands them out:
- image: `[H, W, 4]` uint8, its one frame as PIL holds it: R, G, B and an unused byte per pixel
  (shipping PIL's memory as is saves two copies, see pil_memory.py; the device reads 3 of the 4
  bytes); the second, identical frame is made on the device;
- video: `[T, 3, H, W]` uint8, T = 2t sampled frames (two per tube).
H and W are multiples of 28; the grid is (1, H/14, W/14) for an image and (T/2, H/14, W/14) for video.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qvltrain.vision.layout import MERGE_SIZE, PATCH_SIZE, TEMPORAL_PATCH_SIZE

IMAGE_CHANNELS_STORED = 4
"""Bytes per stored image pixel: R, G, B and PIL's unused fourth byte."""


def pixels_shape(grid_thw: tuple[int, int, int], temporal_repeat: int) -> tuple[int, ...]:
    """Shape of the stored pixels of an item: image [H, W, 4] (RGBX), video [T, 3, H, W]."""
    t, h, w = grid_thw
    height, width = h * PATCH_SIZE, w * PATCH_SIZE
    if temporal_repeat == TEMPORAL_PATCH_SIZE:
        return (height, width, IMAGE_CHANNELS_STORED)
    return (t * TEMPORAL_PATCH_SIZE, 3, height, width)


@dataclass
class VisualPatches:
    """One image or video: its resized pixels and grid."""

    pixels: torch.Tensor  # image [H, W, 4] uint8 (RGBX); video [T, 3, H, W] uint8
    grid_thw: tuple[int, int, int]
    """(t, h, w) in patches BEFORE merging: tubes of 2 frames, rows and columns of 14 px."""
    temporal_repeat: int
    """2 for an image (one frame stored, shown twice); 1 for video (both frames of each tube stored)."""
    frame_times_s: tuple[float, ...] | None = None
    """Timestamps of the sampled video frames (None for images)."""
    second_per_grid_t: float | None = None
    """Seconds one tube (2 sampled frames) spans, 2 / sampled fps (video only): the time scale of
    Qwen2.5-VL's absolute-time positions (transformers' `second_per_grid_ts`)."""

    def __post_init__(self) -> None:
        t, h, w = self.grid_thw
        expected = pixels_shape(self.grid_thw, self.temporal_repeat)
        assert self.pixels.dtype == torch.uint8 and tuple(self.pixels.shape) == expected, (
            f"pixels {tuple(self.pixels.shape)} {self.pixels.dtype} do not match grid {self.grid_thw} "
            f"with temporal_repeat={self.temporal_repeat} (expected uint8 {expected})"
        )
        assert h % MERGE_SIZE == 0 and w % MERGE_SIZE == 0, f"grid {self.grid_thw} is not mergeable"

    @property
    def num_patches(self) -> int:
        """Rows the vision tower sees (each [1176] after the device step)."""
        t, h, w = self.grid_thw
        return t * h * w

    @property
    def num_tokens(self) -> int:
        """Merged LLM tokens (the count of pad tokens between vision_start and vision_end)."""
        return self.num_patches // (MERGE_SIZE * MERGE_SIZE)
