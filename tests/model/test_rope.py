"""M-RoPE positions equal transformers' `Qwen2VLModel.get_rope_index` on the same token types and grids."""

import random
from types import SimpleNamespace

import pytest
import torch
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel

from qvltrain.model.rope import mrope_positions, sample_position_ids

MERGE = 2


class RopeIndexOracle:
    """Just enough of a Qwen2VLModel to call its own `get_rope_index` unbound (no weights built)."""

    get_rope_index = Qwen2VLModel.get_rope_index
    get_vision_position_ids = Qwen2VLModel.get_vision_position_ids

    def __init__(self, spatial_merge_size: int = MERGE) -> None:
        self.config = SimpleNamespace(vision_config=SimpleNamespace(spatial_merge_size=spatial_merge_size))

    def __call__(self, token_types: torch.Tensor, image_grids, video_grids) -> torch.Tensor:
        as_grid = lambda grids: torch.tensor(grids, dtype=torch.long).reshape(-1, 3) if grids else None  # noqa: E731
        input_ids = torch.zeros(1, token_types.numel(), dtype=torch.long)  # ids are not read, only types
        positions, _ = self.get_rope_index(
            input_ids, token_types[None], as_grid(image_grids), as_grid(video_grids)
        )
        return positions[:, 0]  # [3, L]


def random_sequence(rng: random.Random, max_blocks: int = 5):
    """Token types with text runs and visual blocks in random order (blocks always separated by text)."""
    types: list[int] = []
    image_grids, video_grids = [], []
    for _ in range(rng.randint(0, max_blocks)):
        types += [0] * rng.randint(1, 6)
        kind = rng.choice((1, 2))
        t = 1 if kind == 1 else rng.randint(1, 12)
        grid = (t, MERGE * rng.randint(1, 6), MERGE * rng.randint(1, 6))
        (image_grids if kind == 1 else video_grids).append(grid)
        types += [kind] * (grid[0] * grid[1] * grid[2] // MERGE**2)
    types += [0] * rng.randint(0, 6)
    return torch.tensor(types, dtype=torch.long), image_grids, video_grids


def test_matches_get_rope_index_on_random_sequences():
    rng = random.Random(1234)
    oracle = RopeIndexOracle()
    for _ in range(300):
        token_types, image_grids, video_grids = random_sequence(rng)
        if token_types.numel() == 0:
            continue
        expected = oracle(token_types, image_grids, video_grids)
        torch.testing.assert_close(mrope_positions(token_types, image_grids, video_grids, MERGE), expected)


def test_known_image_block_positions():
    # 2 text, a 4x6 patch image (2x3 merged), 2 text: text resumes at 2 + max(2, 3) = 5.
    token_types = torch.tensor([0, 0] + [1] * 6 + [0, 0])
    positions = mrope_positions(token_types, [(1, 4, 6)], None)
    assert positions.tolist() == [
        [0, 1, 2, 2, 2, 2, 2, 2, 5, 6],
        [0, 1, 2, 2, 2, 3, 3, 3, 5, 6],
        [0, 1, 2, 3, 4, 2, 3, 4, 5, 6],
    ]


def test_text_only_and_empty():
    assert mrope_positions(torch.zeros(5, dtype=torch.long)).tolist() == [list(range(5))] * 3
    assert mrope_positions([]).shape == (3, 0)


def test_four_row_stack_has_text_positions_on_top():
    mrope = mrope_positions(torch.tensor([0] + [1] * 4 + [0]), [(1, 4, 4)])
    stacked = sample_position_ids(torch.tensor([0] + [1] * 4 + [0]), [(1, 4, 4)])
    assert stacked.shape == (4, 6)
    assert stacked[0].tolist() == list(range(6))
    assert torch.equal(stacked[1:], mrope)


def test_grid_mismatches_are_errors():
    with pytest.raises(ValueError, match="needs 4"):
        mrope_positions(torch.tensor([0, 1, 1, 1, 0]), [(1, 4, 4)])
    with pytest.raises(ValueError, match="more image blocks"):
        mrope_positions(torch.tensor([0, 1, 0]), None)
    with pytest.raises(ValueError, match="grids of type 2"):
        mrope_positions(torch.tensor([0, 0]), None, [(2, 2, 2)])
