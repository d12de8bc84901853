"""M-RoPE positions: the paper's rule against an independent implementation of it, transformers' rule
against transformers' own `Qwen2VLModel.get_rope_index` on the same token types and grids."""

import random
from types import SimpleNamespace

import pytest
import torch
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel

from qvltrain.text.positions import mrope_positions, sample_position_ids

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


def paper_rule_positions(token_types, image_grids, video_grids, merge: int = MERGE) -> list[list[int]]:
    """The Qwen2-VL paper's rule written from its text, token by token, in plain Python.

    Section 2.1: text tokens share one id on all three rows; a visual block's tokens take
    (start + frame, start + row, start + column); "position numbering for each modality is
    initialized by incrementing the maximum position ID of the preceding modality by one".
    """
    grids = {1: iter(image_grids or []), 2: iter(video_grids or [])}
    types = [int(x) for x in token_types]
    rows: list[list[int]] = [[], [], []]
    largest = -1  # the largest id given so far, over all three rows
    i = 0
    while i < len(types):
        if types[i] == 0:
            for row in rows:
                row.append(largest + 1)
            largest += 1
            i += 1
            continue
        t, h, w = next(grids[types[i]])
        h, w = h // merge, w // merge
        start = largest + 1
        for frame in range(t):
            for y in range(h):
                for x in range(w):
                    rows[0].append(start + frame)
                    rows[1].append(start + y)
                    rows[2].append(start + x)
        largest = max(rows[0][-1], rows[1][-1], rows[2][-1])
        i += t * h * w
    return rows


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


def test_transformers_rule_matches_get_rope_index_on_random_sequences():
    rng = random.Random(1234)
    oracle = RopeIndexOracle()
    for _ in range(300):
        token_types, image_grids, video_grids = random_sequence(rng)
        if token_types.numel() == 0:
            continue
        expected = oracle(token_types, image_grids, video_grids)
        ours = mrope_positions(token_types, image_grids, video_grids, MERGE, "transformers")
        torch.testing.assert_close(ours, expected)


def test_paper_rule_matches_independent_implementation_on_random_sequences():
    rng = random.Random(4321)
    num_differing = 0  # sequences where the two rules disagree: the test must exercise the difference
    for _ in range(300):
        token_types, image_grids, video_grids = random_sequence(rng)
        expected = paper_rule_positions(token_types, image_grids, video_grids)
        ours = mrope_positions(token_types, image_grids, video_grids, MERGE)
        assert ours.tolist() == expected, (token_types.tolist(), image_grids, video_grids)
        other = mrope_positions(token_types, image_grids, video_grids, MERGE, "transformers")
        num_differing += not torch.equal(ours, other)
    assert num_differing > 50


@pytest.mark.parametrize(
    ("grid", "paper_next", "transformers_next"),
    [
        ((24, 24, 40), 2 + 24, 2 + 20),  # 24 tubes at 12x20 merged: T > max(h', w'), the rules differ
        ((6, 4, 12), 2 + 6, 2 + 6),  # T == max(h', w'): both rules resume at the same position
        ((2, 8, 4), 2 + 4, 2 + 4),  # T < max(h', w')
    ],
)
def test_text_after_a_video_block(grid, paper_next, transformers_next):
    t, h, w = grid
    token_types = torch.tensor([0, 0] + [2] * (t * h * w // MERGE**2) + [0, 0])
    paper = mrope_positions(token_types, None, [grid])
    transformers_rule = mrope_positions(token_types, None, [grid], MERGE, "transformers")
    assert paper[:, -2].tolist() == [paper_next] * 3
    assert paper[:, -1].tolist() == [paper_next + 1] * 3
    assert transformers_rule[:, -2].tolist() == [transformers_next] * 3
    torch.testing.assert_close(transformers_rule, RopeIndexOracle()(token_types, None, [grid]))
    # The visual block itself is the same under both rules; only what follows moves.
    assert torch.equal(paper[:, :-2], transformers_rule[:, :-2])


def test_images_and_mixed_blocks_under_both_rules():
    # image (1, 4, 6) -> 2x3 merged, then a video of 5 tubes at 1x2 merged, then an image again.
    image, video = (1, 4, 6), (5, 2, 4)
    token_types = torch.tensor([0] * 2 + [1] * 6 + [0] + [2] * 10 + [0] + [1] * 6 + [0])
    paper = mrope_positions(token_types, [image, image], [video])
    assert paper.tolist() == paper_rule_positions(token_types, [image, image], [video])
    # after the first image both rules give 2 + 3 = 5; after the video: paper 6 + 5, transformers 6 + 2
    assert paper[:, 8].tolist() == [5] * 3
    assert paper[:, 19].tolist() == [11] * 3
    transformers_rule = mrope_positions(token_types, [image, image], [video], MERGE, "transformers")
    assert transformers_rule[:, 19].tolist() == [8] * 3
    torch.testing.assert_close(transformers_rule, RopeIndexOracle()(token_types, [image, image], [video]))


def test_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="position_rule='vllm'"):
        mrope_positions(torch.tensor([0, 0]), None, None, MERGE, "vllm")


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
