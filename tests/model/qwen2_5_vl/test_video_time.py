"""second_per_grid_ts from the video sampler to the positions: the dynamic rate qwen-vl-utils
samples at (budget fps, lowered by max_frames for long videos, raised by min_frames for short ones),
2 / sampled fps per tube, the t-row of the decoded sample, PackedBatch, and an exact resume."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from qvltrain.data.config import DataConfig
from qvltrain.data.loader import TrainBatches
from qvltrain.text.tokenizer import load_tokenizer
from qvltrain.vision.budgets import VideoBudget
from qvltrain.vision.sampling import num_sampled_frames, sampled_fps, second_per_grid
from qvltrain.vision.video import frames_to_patches, video_to_patches
from tests.data.mixed_shards import dataset, jpeg, write_mixed_shards
from tests.model.qwen2_5_vl.fixtures import decoder
from tests.vision.media import write_video

BUDGET = VideoBudget(total_pixels=3136 * 8, min_pixels=3136, max_pixels=3136 * 4, min_frames=4, max_frames=8)
OPTIONS = {"box_format": "qwen2_5_vl", "tokens_per_second": 2}


@pytest.mark.parametrize(
    ("total_frames", "video_fps", "frames", "seconds"),
    [
        (40, 10.0, 8, 1.0),  # 4 s at 2 fps: 8 frames, the budget rate
        (100, 10.0, 8, 2.5),  # 10 s: capped at max_frames = 8 -> 0.8 fps, 2.5 s per tube
        (6, 4.0, 4, 0.75),  # 1.5 s: raised to min_frames = 4 -> 2.67 fps
        (30, 29.97, 4, 2 / (4 / 30 * 29.97)),  # 1 s of NTSC: min_frames = 4 -> 3.996 fps
    ],
)
def test_dynamic_rate_and_seconds_per_tube(total_frames, video_fps, frames, seconds) -> None:
    budget = BUDGET
    assert num_sampled_frames(total_frames, video_fps, budget) == frames
    assert sampled_fps(frames, total_frames, video_fps) == pytest.approx(2 / seconds)
    assert second_per_grid(frames, total_frames, video_fps) == pytest.approx(seconds)


def test_decoded_video_and_frame_list_carry_seconds_per_tube() -> None:
    mp4 = video_to_patches(write_video(6, fps=4, size=(56, 56)), BUDGET, "clip")
    assert mp4.grid_thw[0] == 2 and mp4.second_per_grid_t == pytest.approx(0.75)
    frames = [jpeg(56, 84, seed) for seed in range(5)]
    listed = frames_to_patches(frames, [0.5 * i for i in range(5)], BUDGET, "frames")
    assert listed.second_per_grid_t == pytest.approx(2 / (4 / 5 * 2.0))  # 4 of 5 frames at 2 fps: 1.25 s


def test_sample_t_row_follows_absolute_time() -> None:
    tokenizer = load_tokenizer(None)
    messages = [
        {"role": "user", "content": [{"type": "video", "file": "v.mp4"}, {"type": "text", "text": "what"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a clip"}]},
    ]
    raw = {"__key__": "v", "json": json.dumps({"task": "video", "messages": messages}).encode()}
    raw["v.mp4"] = write_video(100, fps=10, size=(56, 56))  # 10 s -> 8 frames, 4 tubes, 2.5 s each
    sample = decoder(tokenizer)(raw)
    (video,) = sample.patches
    assert video.second_per_grid_t == pytest.approx(2.5)
    t_row = sample.position_ids[1][sample.mm_token_type_ids == 2]
    per_tube = video.grid_thw[1] * video.grid_thw[2] // 4
    steps = (t_row[::per_tube] - t_row[0]).tolist()
    assert steps == [int(np.float32(i) * np.float32(2) * np.float32(2.5)) for i in range(4)] == [0, 5, 10, 15]
    # the paper rule: text after the video (its vision_end) starts at the largest position + 1
    last_pad = int(torch.nonzero(sample.mm_token_type_ids == 2).max())
    start = int(t_row[0])
    merged = (video.grid_thw[1] // 2, video.grid_thw[2] // 2)
    assert sample.position_ids[1:, last_pad + 1].tolist() == [start + max(15 + 1, *merged)] * 3


@pytest.fixture(scope="module")
def video_shards(tmp_path_factory) -> Path:
    return write_mixed_shards(
        tmp_path_factory.mktemp("videos"),
        num_samples=24,
        samples_per_shard=6,
        kinds=("video", "frames", "text"),
    )


def test_seconds_per_tube_resume_exactly(video_shards: Path) -> None:
    """9 packs uninterrupted == 5, the state through torch.save, then 4 more: the same seconds per
    tube and positions."""
    tokenizer = load_tokenizer(None)
    data = DataConfig(train=[dataset("videos", video_shards)], seq_len=256, max_patches=768, pack_window=8)

    def batches():
        return TrainBatches(data, "plain", tokenizer, 0, 1, render_options=OPTIONS)

    uninterrupted = batches()
    reference = [next(uninterrupted) for _ in range(9)]
    uninterrupted.close()
    first = batches()
    head = [next(first) for _ in range(5)]
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    first.close()
    buffer.seek(0)
    resumed = batches()
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    tail = [next(resumed) for _ in range(4)]
    resumed.close()
    fractional = 0
    for got, expected in zip(head + tail, reference, strict=True):
        assert got.keys == expected.keys
        assert torch.equal(got.position_ids, expected.position_ids)
        assert (got.second_per_grid_ts is None) == (expected.second_per_grid_ts is None)
        if expected.second_per_grid_ts is not None:
            assert torch.equal(got.second_per_grid_ts, expected.second_per_grid_ts)
            fractional += int(((2 * expected.second_per_grid_ts) % 1 != 0).sum())
    assert fractional > 0
