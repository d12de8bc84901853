"""Videos: decord or pre-extracted JPEG frames -> sampled frames -> resized uint8 frames [T, 3, H, W].

Reference: transformers' Qwen2VLVideoProcessor with `cap_pixels_per_frame=True`, fed the frames we
sample (frame choice follows the facts page / qwen-vl-utils; transformers' own `sample_frames`
picks differently and is not used). Frames are resized like that processor resizes them: torch
bicubic with antialias on uint8 (torchvision's path on CPU), NOT PIL, so a video frame and the
same picture as an image can differ by one grey level.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from qvltrain.vision.budgets import VideoBudget
from qvltrain.vision.errors import VisualInputError
from qvltrain.vision.image import decode_image
from qvltrain.vision.layout import PATCH_SIZE, TEMPORAL_PATCH_SIZE
from qvltrain.vision.patches import VisualPatches
from qvltrain.vision.resize import smart_resize
from qvltrain.vision.sampling import (
    fps_from_timestamps,
    num_sampled_frames,
    sample_frame_indices,
    second_per_grid,
)
from qvltrain.vision.video_decode import DecordVideo, call_with_timeout

DEFAULT_DECODE_TIMEOUT_S = 60.0
"""Time budget to decode one video's sampled frames in a loader worker."""


def frame_size(height: int, width: int, num_frames: int, budget: VideoBudget, name: str) -> tuple[int, int]:
    """Resized (height, width) of every frame when `num_frames` frames share the total budget."""
    return smart_resize(
        height,
        width,
        min_pixels=budget.min_pixels,
        max_pixels=budget.frame_max_pixels(num_frames),
        name=name,
    )


def resize_frames(frames_hwc: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Frames [n, H, W, 3] uint8 -> [n, 3, h, w] uint8, bicubic with antialias (transformers' video path)."""
    frames = frames_hwc.permute(0, 3, 1, 2).contiguous()  # the reference resizes contiguous NCHW
    if tuple(frames.shape[-2:]) == size:
        return frames
    return F.interpolate(frames, size=size, mode="bicubic", align_corners=False, antialias=True)


def _frames_to_patches(
    chunks: Sequence[torch.Tensor],
    num_frames: int,
    budget: VideoBudget,
    times_s: list[float],
    name: str,
    seconds_per_tube: float,
) -> VisualPatches:
    height, width = chunks[0].shape[1:3]
    size = frame_size(height, width, num_frames, budget, name)
    resized = torch.cat([resize_frames(chunk, size) for chunk in chunks])  # [n, 3, h, w] uint8
    assert resized.shape[0] == num_frames and num_frames % TEMPORAL_PATCH_SIZE == 0
    grid_thw = (num_frames // TEMPORAL_PATCH_SIZE, size[0] // PATCH_SIZE, size[1] // PATCH_SIZE)
    # The tube rows [C][t][14][14] are cut from these frames on the device (device.py).
    return VisualPatches(
        pixels=resized,
        grid_thw=grid_thw,
        temporal_repeat=1,
        frame_times_s=tuple(times_s),
        second_per_grid_t=seconds_per_tube,
    )


def video_to_patches(
    data_or_path: bytes | str | os.PathLike,
    budget: VideoBudget,
    name: str,
    timeout_s: float | None = DEFAULT_DECODE_TIMEOUT_S,
) -> VisualPatches:
    """An encoded video (bytes or a file) -> resized uint8 frames and grid (t, h, w), via decord.

    Skips (VisualInputError): empty_video, corrupt_video, short_video (< 2 frames), decode_timeout.
    """

    def decode() -> VisualPatches:
        video = DecordVideo(data_or_path, name)
        num_frames = num_sampled_frames(video.info.num_frames, video.info.fps, budget, name)
        indices = sample_frame_indices(video.info.num_frames, num_frames)
        times_s = [index / video.info.fps for index in indices]
        seconds = second_per_grid(num_frames, video.info.num_frames, video.info.fps)
        return _frames_to_patches(video.frames(indices), num_frames, budget, times_s, name, seconds)

    return call_with_timeout(decode, timeout_s, name)


def frames_to_patches(
    frames: Sequence[bytes], timestamps_s: Sequence[float], budget: VideoBudget, name: str
) -> VisualPatches:
    """Pre-extracted JPEG frames (in time order) with their timestamps -> VisualPatches, as for a video.

    The list is sampled at budget.fps like a decoded video, and only the chosen frames are decoded,
    so recipes may extract densely. All frames must share one size.
    """
    if len(frames) == 0:
        raise VisualInputError("empty_video", name, "no frames")
    if len(frames) != len(timestamps_s):
        raise VisualInputError(
            "corrupt_video", name, f"{len(frames)} frames but {len(timestamps_s)} timestamps"
        )
    video_fps = fps_from_timestamps(timestamps_s, name)
    num_frames = num_sampled_frames(len(frames), video_fps, budget, name)
    indices = sample_frame_indices(len(frames), num_frames)
    decoded = []
    for index in indices:
        try:
            image = decode_image(frames[index], f"{name}[{index}]")
        except VisualInputError as error:
            raise VisualInputError("corrupt_video", name, f"frame {index}: {error.reason}") from error
        decoded.append(torch.from_numpy(np.array(image)))  # [H, W, 3] uint8
    if len({tuple(frame.shape) for frame in decoded}) != 1:
        raise VisualInputError("corrupt_video", name, "frames differ in size")
    times_s = [float(timestamps_s[index]) for index in indices]
    seconds = second_per_grid(num_frames, len(frames), video_fps)
    return _frames_to_patches([torch.stack(decoded)], num_frames, budget, times_s, name, seconds)
