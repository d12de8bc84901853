"""VisualPatches, and the uint8 patchify of resized images and frames into rows in the reference order.

Rows stay uint8 through the loader: an image row holds ONE frame, [C=3][14][14] (588 bytes), since
its second frame is identical and is made on the device; a video row holds both frames of its
tube, [C=3][t=2][14][14] (1176 bytes), which is already the order of the patch embedding's input.
Rows come in merge order: every 4 consecutive rows are one 2x2 window of the merger.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from qvltrain.vision.layout import FACTOR, FRAME_BYTES, MERGE_SIZE, PATCH_SIZE, TEMPORAL_PATCH_SIZE


@dataclass
class VisualPatches:
    """One image or video as the loader carries it."""

    rows: torch.Tensor  # [t*h*w, 588] uint8 (image) or [t*h*w, 1176] uint8 (video)
    grid_thw: tuple[int, int, int]
    """(t, h, w) in patches BEFORE merging: tubes of 2 frames, rows and columns of 14 px."""
    temporal_repeat: int
    """2 for an image (its second identical frame is not stored); 1 for video rows holding both."""
    frame_times_s: tuple[float, ...] | None = None
    """Timestamps of the sampled video frames (None for images)."""

    def __post_init__(self) -> None:
        t, h, w = self.grid_thw
        row_bytes = FRAME_BYTES * TEMPORAL_PATCH_SIZE // self.temporal_repeat
        assert self.rows.dtype == torch.uint8 and tuple(self.rows.shape) == (t * h * w, row_bytes), (
            f"rows {tuple(self.rows.shape)} {self.rows.dtype} do not match grid {self.grid_thw} "
            f"with temporal_repeat={self.temporal_repeat}"
        )

    @property
    def num_patches(self) -> int:
        """Rows the vision tower sees (each [1176] after device normalisation)."""
        t, h, w = self.grid_thw
        return t * h * w

    @property
    def num_tokens(self) -> int:
        """Merged LLM tokens (the count of pad tokens between vision_start and vision_end)."""
        return self.num_patches // (MERGE_SIZE * MERGE_SIZE)


def patchify_image(image: Image.Image) -> torch.Tensor:
    """Resized RGB image (sides multiples of 28) -> rows [H/14 * W/14, 588] uint8, one frame per row."""
    width, height = image.size
    assert image.mode == "RGB" and height % FACTOR == 0 and width % FACTOR == 0
    windows_h, windows_w = height // FACTOR, width // FACTOR
    # PIL's line-interleaved raw mode hands out each pixel row as its R, G and B planes: [H, 3, W].
    lines = np.frombuffer(image.tobytes("raw", "RGB;L"), dtype=np.uint8)
    lines = lines.reshape(windows_h, MERGE_SIZE, PATCH_SIZE, 3, windows_w, FACTOR)
    # Two copies with long contiguous runs measured ~3x faster than one 7-D gather of short runs:
    # first the window column outward, then the 2x2 window and the channel into row order.
    by_window = np.ascontiguousarray(lines.transpose(0, 4, 1, 2, 3, 5))  # (wh, ww, mh, 14, C, 28)
    by_window = by_window.reshape(windows_h, windows_w, MERGE_SIZE, PATCH_SIZE, 3, MERGE_SIZE, PATCH_SIZE)
    rows = np.ascontiguousarray(by_window.transpose(0, 1, 2, 5, 4, 3, 6))  # (wh, ww, mh, mw, C, 14, 14)
    return torch.from_numpy(rows.reshape(windows_h * windows_w * MERGE_SIZE * MERGE_SIZE, FRAME_BYTES))


def patchify_frames(frames: torch.Tensor) -> torch.Tensor:
    """Resized frames [T, 3, H, W] uint8 (T even) -> rows [T/2 * H/14 * W/14, 1176] uint8."""
    num_frames, channels, height, width = frames.shape
    assert num_frames % TEMPORAL_PATCH_SIZE == 0 and channels == 3
    grid_t, grid_h, grid_w = num_frames // TEMPORAL_PATCH_SIZE, height // PATCH_SIZE, width // PATCH_SIZE
    blocks = frames.reshape(
        grid_t,
        TEMPORAL_PATCH_SIZE,
        3,
        grid_h // MERGE_SIZE,
        MERGE_SIZE,
        PATCH_SIZE,
        grid_w // MERGE_SIZE,
        MERGE_SIZE,
        PATCH_SIZE,
    )
    # -> (tube, window row, window col, row in window, col in window, C, t, 14, 14)
    blocks = blocks.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return blocks.reshape(grid_t * grid_h * grid_w, TEMPORAL_PATCH_SIZE * FRAME_BYTES)
