"""Qwen2.5-VL absolute-time M-RoPE: a video tube's t-row is floor(index * tokens_per_second *
second_per_grid_t). The "transformers" rule is checked against transformers' own
`Qwen2_5_VLModel.get_rope_index` (fractional steps included); the "paper" rule (the default, what
the released Qwen2.5-VL code did: text resumes at the largest position so far + 1) against a
token-by-token implementation written from that description."""

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

from qvltrain.text.positions import mrope_positions

MERGE = 2
TOKENS_PER_SECOND = 2  # every Qwen2.5-VL release (config.json vision_config.tokens_per_second)
FPS_CHOICES = (2.0, 1.0, 3.0, 0.5, 0.7, 24 / 7, 29.97 / 15, 4.0, 2 / 3)


class RopeIndexOracle:
    """Just enough of a Qwen2_5_VLModel to call its own `get_rope_index` unbound (no weights)."""

    get_rope_index = Qwen2_5_VLModel.get_rope_index
    get_vision_position_ids = Qwen2_5_VLModel.get_vision_position_ids

    def __init__(self, tokens_per_second: int = TOKENS_PER_SECOND) -> None:
        vision = SimpleNamespace(spatial_merge_size=MERGE, tokens_per_second=tokens_per_second)
        self.config = SimpleNamespace(vision_config=vision)

    def __call__(self, token_types, image_grids, video_grids, seconds) -> torch.Tensor:
        as_grid = lambda grids: torch.tensor(grids, dtype=torch.long).reshape(-1, 3) if grids else None  # noqa: E731
        input_ids = torch.zeros(1, token_types.numel(), dtype=torch.long)
        # The processor hands second_per_grid_ts over as a float32 tensor (BatchFeature of a float list).
        seconds_tensor = torch.tensor(seconds, dtype=torch.float32) if seconds else None
        positions, _ = self.get_rope_index(
            input_ids, token_types[None], as_grid(image_grids), as_grid(video_grids), seconds_tensor
        )
        return positions[:, 0]


def released_rule_positions(token_types, image_grids, video_grids, seconds, tps=TOKENS_PER_SECOND):
    """The released Qwen2.5-VL rule token by token: a block starts at the largest id so far + 1; a
    tube's t is floor(frame * second_per_grid * tokens_per_second) (float32); text follows the
    largest id + 1."""
    grids = {1: iter(image_grids or []), 2: iter(video_grids or [])}
    seconds = iter(seconds or [])
    types = [int(x) for x in token_types]
    rows: list[list[int]] = [[], [], []]
    largest, i = -1, 0
    while i < len(types):
        if types[i] == 0:
            for row in rows:
                row.append(largest + 1)
            largest += 1
            i += 1
            continue
        t, h, w = next(grids[types[i]])
        step = np.float32(tps) * np.float32(next(seconds)) if types[i] == 2 else None
        h, w, start = h // MERGE, w // MERGE, largest + 1
        for frame in range(t):
            time = frame if step is None else int(np.float32(frame) * step)
            for y in range(h):
                for x in range(w):
                    rows[0].append(start + time)
                    rows[1].append(start + y)
                    rows[2].append(start + x)
                    largest = max(largest, start + time, start + y, start + x)
        i += t * h * w
    return rows


def random_sequence(rng: random.Random, max_blocks: int = 5):
    types: list[int] = []
    image_grids, video_grids, seconds = [], [], []
    for _ in range(rng.randint(0, max_blocks)):
        types += [0] * rng.randint(1, 6)
        kind = rng.choice((1, 2))
        t = 1 if kind == 1 else rng.randint(1, 12)
        grid = (t, MERGE * rng.randint(1, 6), MERGE * rng.randint(1, 6))
        (image_grids if kind == 1 else video_grids).append(grid)
        if kind == 2:
            seconds.append(2 / rng.choice(FPS_CHOICES))
        types += [kind] * (grid[0] * grid[1] * grid[2] // MERGE**2)
    types += [0] * rng.randint(0, 6)
    return torch.tensor(types, dtype=torch.long), image_grids, video_grids, seconds


def ours(token_types, image_grids, video_grids, seconds, rule="paper"):
    return mrope_positions(
        token_types, image_grids, video_grids, MERGE, rule,
        tokens_per_second=TOKENS_PER_SECOND, video_second_per_grid=seconds,
    )  # fmt: skip


def test_transformers_rule_matches_get_rope_index_with_fractional_time():
    rng = random.Random(2025)
    oracle = RopeIndexOracle()
    num_fractional = 0
    for _ in range(300):
        token_types, image_grids, video_grids, seconds = random_sequence(rng)
        if token_types.numel() == 0:
            continue
        expected = oracle(token_types, image_grids, video_grids, seconds)
        torch.testing.assert_close(
            ours(token_types, image_grids, video_grids, seconds, "transformers"), expected
        )
        num_fractional += any((TOKENS_PER_SECOND * s) % 1 for s in seconds)
    assert num_fractional > 50  # fractional steps per tube were exercised


def test_paper_rule_matches_the_released_rule():
    rng = random.Random(77)
    num_differing = 0
    for _ in range(300):
        token_types, image_grids, video_grids, seconds = random_sequence(rng)
        expected = released_rule_positions(token_types, image_grids, video_grids, seconds)
        got = ours(token_types, image_grids, video_grids, seconds)
        assert got.tolist() == expected, (token_types.tolist(), image_grids, video_grids, seconds)
        num_differing += not torch.equal(
            got, ours(token_types, image_grids, video_grids, seconds, "transformers")
        )
    assert num_differing > 50


def test_known_fractional_video_block():
    # 3 fps: second_per_grid = 2/3, step = 2 * 0.6666667 = 1.3333334 per tube -> t-rows 0, 1, 2, 4, 5.
    grid = (5, 2, 2)  # 5 tubes of one merged token
    token_types = torch.tensor([0, 0] + [2] * 5 + [0])
    positions = ours(token_types, None, [grid], [2 / 3])
    assert positions[0].tolist() == [0, 1, 2 + 0, 2 + 1, 2 + 2, 2 + 4, 2 + 5, 2 + 6]
    assert positions[1, 2:7].tolist() == [2] * 5
    # transformers' rule resumes at 2 + max(h', w') = 3, below the video's t-row.
    assert ours(token_types, None, [grid], [2 / 3], "transformers")[:, -1].tolist() == [3] * 3


def test_half_fps_video_spreads_positions():
    # 0.5 fps: a tube spans 4 s -> 8 positions per tube at 2 tokens per second.
    token_types = torch.tensor([0] + [2] * 3)
    positions = ours(token_types, None, [(3, 2, 2)], [4.0])
    assert positions[0].tolist() == [0, 1, 9, 17]


def test_images_ignore_time_and_need_no_seconds():
    token_types = torch.tensor([0] + [1] * 6 + [0])
    with_time = ours(token_types, [(1, 4, 6)], None, [])
    assert torch.equal(with_time, mrope_positions(token_types, [(1, 4, 6)], None))


def test_missing_or_bad_seconds_are_errors():
    token_types = torch.tensor([0] + [2] * 2)
    with pytest.raises(ValueError, match="1 video grid"):
        ours(token_types, None, [(2, 2, 2)], [])
    with pytest.raises(ValueError, match="must be > 0"):
        ours(token_types, None, [(2, 2, 2)], [0.0])
    with pytest.raises(ValueError, match="tokens_per_second is None"):
        mrope_positions(token_types, None, [(2, 2, 2)], video_second_per_grid=[1.0])
