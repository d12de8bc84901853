"""Video: frame sampling by the facts page, tube rows in the reference layout, pre-extracted frames, skips."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch
from PIL import Image

from qvltrain.vision import (
    VideoBudget,
    VisualInputError,
    frames_to_patches,
    patches_to_pixel_values,
    video_grid,
    video_num_tokens,
    video_to_patches,
)
from qvltrain.vision import video as video_module
from qvltrain.vision.layout import CLIP_MEAN, CLIP_STD
from qvltrain.vision.sampling import fps_from_timestamps, num_sampled_frames, sample_frame_indices
from qvltrain.vision.video_decode import DecordVideo, call_with_timeout
from tests.conftest import deadline_s
from tests.vision.media import encode, smooth_pixels, write_video

SMALL = VideoBudget(total_pixels=64 * 784, min_pixels=4 * 784, max_pixels=16 * 784)


@pytest.fixture(scope="module")
def clip() -> bytes:
    return write_video(25, fps=10)  # 2.5 s, 48x64


def facts_page_rows(frames_nchw: torch.Tensor) -> torch.Tensor:
    """Resized frames [T, 3, H, W] uint8 -> [T/2*H/14*W/14, 1176] exactly as the facts page spells it."""
    t, c, h, w = frames_nchw.shape
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    x = (frames_nchw.double() / 255 - mean.double()) / std.double()
    x = x.reshape(t // 2, 2, c, h // 28, 2, 14, w // 28, 2, 14).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(-1, 1176).float()


def test_frame_count_follows_the_facts_page() -> None:
    budget = VideoBudget(total_pixels=24576 * 784)
    assert num_sampled_frames(25, 10.0, budget) == 4  # 5 wanted -> even 4
    assert num_sampled_frames(300, 30.0, budget) == 20  # 10 s at 2 fps
    assert num_sampled_frames(3, 30.0, budget) == 2  # clamped to the frames there are, even
    assert num_sampled_frames(10**6, 30.0, budget) == 768  # max_frames
    assert num_sampled_frames(301, 30.0, VideoBudget(total_pixels=10**7, fps=1.0)) == 10
    assert sample_frame_indices(25, 4) == [0, 8, 16, 24]
    assert sample_frame_indices(10, 4) == [0, 3, 6, 9]


def test_video_rows_follow_the_reference_layout(clip: bytes) -> None:
    patches = video_to_patches(clip, SMALL, "clip")
    assert patches.temporal_repeat == 1 and patches.pixels.shape[:2] == (4, 3)
    video = DecordVideo(clip, "clip")
    indices = sample_frame_indices(video.info.num_frames, 4)
    frames = torch.cat(video.frames(indices))  # [4, 48, 64, 3]
    size = video_module.frame_size(48, 64, 4, SMALL, "clip")
    assert patches.grid_thw == (2, size[0] // 14, size[1] // 14) == video_grid(25, 10.0, 48, 64, SMALL)
    expected = facts_page_rows(video_module.resize_frames(frames, size))
    torch.testing.assert_close(patches_to_pixel_values(patches), expected, rtol=0, atol=1e-5)
    assert patches.frame_times_s == pytest.approx([0.0, 0.8, 1.6, 2.4])
    assert patches.num_tokens == video_num_tokens(25, 10.0, 48, 64, SMALL)


def test_video_from_a_file_path(clip: bytes, tmp_path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip)
    assert torch.equal(
        video_to_patches(path, SMALL, "clip").pixels, video_to_patches(clip, SMALL, "clip").pixels
    )


def test_pre_extracted_frames_are_sampled_like_a_video() -> None:
    pictures = [smooth_pixels(48, 64, seed) for seed in range(13)]
    jpegs = [encode(Image.fromarray(p), "JPEG", quality=95) for p in pictures]
    times = [index / 4 for index in range(13)]  # 3 s extracted at 4 fps -> 6 frames at 2 fps
    assert fps_from_timestamps(times) == 4.0
    patches = frames_to_patches(jpegs, times, SMALL, "long-video")
    chosen = sample_frame_indices(13, 6)
    assert patches.frame_times_s == tuple(times[i] for i in chosen)
    decoded = torch.stack([torch.from_numpy(np.array(Image.open(io.BytesIO(jpegs[i])))) for i in chosen])
    size = video_module.frame_size(48, 64, 6, SMALL, "long-video")
    expected = facts_page_rows(video_module.resize_frames(decoded, size))
    assert patches.grid_thw == (3, size[0] // 14, size[1] // 14)
    torch.testing.assert_close(patches_to_pixel_values(patches), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty_video"),
        (b"\x00\x00\x00\x18ftypmp42" + bytes(300), "corrupt_video"),
        (b"this is a subtitle file, not a video" * 20, "corrupt_video"),
    ],
    ids=["no-bytes", "bad-mp4-header", "not-a-video"],
)
def test_bad_videos_are_typed_skips(data: bytes, reason: str) -> None:
    with pytest.raises(VisualInputError, match="shard-1/key-5") as caught:
        video_to_patches(data, SMALL, "shard-1/key-5")
    assert caught.value.reason == reason


def test_truncated_video_is_corrupt(clip: bytes) -> None:
    with pytest.raises(VisualInputError) as caught:
        video_to_patches(clip[: len(clip) // 3], SMALL, "cut")
    assert caught.value.reason == "corrupt_video"


def test_one_frame_video_is_too_short() -> None:
    with pytest.raises(VisualInputError) as caught:
        video_to_patches(write_video(1), SMALL, "still")
    assert caught.value.reason == "short_video"


def test_bad_frame_lists_are_typed_skips() -> None:
    jpeg = encode(Image.fromarray(smooth_pixels(48, 64, 0)), "JPEG")
    cases = [
        ([], [], "empty_video"),
        ([jpeg], [0.0], "short_video"),
        ([jpeg, jpeg], [0.0], "corrupt_video"),  # timestamps missing
        ([jpeg, jpeg, jpeg], [0.0, 1.0, 0.5], "corrupt_video"),  # not in time order
        ([jpeg, jpeg[:100]], [0.0, 0.5], "corrupt_video"),  # a cut frame
    ]
    for frames, times, reason in cases:
        with pytest.raises(VisualInputError) as caught:
            frames_to_patches(frames, times, SMALL, "frames")
        assert caught.value.reason == reason, (len(frames), times)


def hang() -> None:
    time.sleep(30)


def test_timeout_turns_a_hang_into_a_skip() -> None:
    started = time.monotonic()
    with pytest.raises(VisualInputError) as caught:
        call_with_timeout(hang, 0.2, "stuck")
    assert caught.value.reason == "decode_timeout" and time.monotonic() - started < deadline_s(5)
    assert call_with_timeout(lambda: 7, deadline_s(5.0), "quick") == 7


def test_video_decode_runs_under_the_timeout(clip: bytes, monkeypatch) -> None:
    class HangingVideo:
        def __init__(self, source, name):
            hang()

    monkeypatch.setattr(video_module, "DecordVideo", HangingVideo)
    with pytest.raises(VisualInputError) as caught:
        video_to_patches(clip, SMALL, "hanging", timeout_s=0.2)
    assert caught.value.reason == "decode_timeout"


def test_errors_inside_the_watchdog_reach_the_caller() -> None:
    with pytest.raises(VisualInputError) as caught:
        video_to_patches(b"", SMALL, "empty", timeout_s=deadline_s(5.0))
    assert caught.value.reason == "empty_video"
