"""Our video rows against transformers' Qwen2VLVideoProcessor (the oracle) on real encoded videos.

The oracle imports torchvision, which the project venv does not carry (no CPU wheel of it imports
beside our torch build); these tests skip there and run in the parity venv: `make parity`.
The oracle is fed the frames we sample (frame choice is the facts page's, tested in test_video.py)
with `cap_pixels_per_frame=True`, whose total budget is int(max_video_tokens * 784 * 0.9) pixels.
"""

from __future__ import annotations

import pytest
import torch

from qvltrain.vision import VideoBudget, patches_to_pixel_values, video_to_patches
from qvltrain.vision.sampling import num_sampled_frames, sample_frame_indices
from qvltrain.vision.video_decode import DecordVideo
from tests.vision.media import write_video

try:
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
except (ImportError, RuntimeError) as error:  # a torchvision built for another torch raises RuntimeError
    pytest.skip(
        f"transformers' video processor needs torchvision ({error}); run `make parity`",
        allow_module_level=True,
    )

# (name, frames, fps, (height, width), codec, min_pixels, max_pixels, max_video_tokens)
CLIPS = [
    ("mpeg4-small", 25, 10, (48, 64), "mpeg4", 4 * 784, 16 * 784, 40),
    ("h264-upscaled", 31, 12, (60, 90), "libx264", 128 * 784, 768 * 784, 24576),
    ("mpeg4-total-capped", 60, 10, (144, 176), "mpeg4", 8 * 784, 200 * 784, 150),
    ("h264-odd-size", 17, 8, (98, 38), "libx264", 784, 4096 * 784, 1000),
]


@pytest.mark.parametrize("clip", CLIPS, ids=[clip[0] for clip in CLIPS])
def test_rows_and_grid_equal_transformers(clip) -> None:
    name, num_frames, fps, size, codec, min_pixels, max_pixels, max_video_tokens = clip
    data = write_video(num_frames, fps=fps, size=size, codec=codec)
    total_pixels = int(max_video_tokens * 28 * 28 * 0.9)  # the oracle's total budget
    budget = VideoBudget(min_pixels=min_pixels, max_pixels=max_pixels, total_pixels=total_pixels)

    ours = video_to_patches(data, budget, name)

    video = DecordVideo(data, name)
    indices = sample_frame_indices(video.info.num_frames, num_sampled_frames(num_frames, fps, budget))
    frames = torch.cat(video.frames(indices)).numpy()  # [n, H, W, 3] uint8, what we sampled
    oracle = Qwen2VLVideoProcessor(
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        cap_pixels_per_frame=True,
        max_video_tokens=max_video_tokens,
    )
    expected = oracle(videos=[frames], do_sample_frames=False, return_tensors="pt")

    assert ours.grid_thw == tuple(expected["video_grid_thw"][0].tolist())
    torch.testing.assert_close(
        patches_to_pixel_values(ours), expected["pixel_values_videos"], rtol=0, atol=1e-5
    )
