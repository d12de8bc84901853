"""Qwen2.5-VL's tower run packed: the window layout equals transformers' `get_vision_window_index`,
window blocks attend within 8x8-patch windows and full blocks within each frame, and nothing leaks
between the images and videos of a pack."""

from __future__ import annotations

import random

import pytest
import torch
from transformers.vision_utils import get_vision_cu_seqlens, get_vision_window_index

from qvltrain.model.qwen2_5_vl.train_module import Qwen2_5_VLTrainModule
from qvltrain.model.qwen2_5_vl.vision import packed_tower, window_layout
from qvltrain.text.tokenizer import load_tokenizer
from tests.model.qwen2_5_vl.fixtures import tiny_reference

PATCH_DIM = 1176


@pytest.fixture(scope="module")
def models():
    reference = tiny_reference(load_tokenizer(None))
    module = Qwen2_5_VLTrainModule(tiny_reference(load_tokenizer(None))).eval()
    return reference, module


def random_grids(rng: random.Random, count: int) -> torch.Tensor:
    return torch.tensor(
        [(rng.choice((1, 1, 2, 3)), 2 * rng.randint(1, 13), 2 * rng.randint(1, 13)) for _ in range(count)]
    )


def test_layout_equals_transformers_window_index() -> None:
    rng = random.Random(5)
    for _ in range(200):
        grids = random_grids(rng, rng.randint(1, 5))
        layout = window_layout(grids, window_size=112)
        window_index, cu_window_seqlens = get_vision_window_index(grids, 2, 112, 14)
        assert torch.equal(layout.window_index, window_index)
        assert torch.equal(layout.cu_window_seqlens, cu_window_seqlens)
        assert torch.equal(layout.cu_seqlens, get_vision_cu_seqlens(grids))
        assert torch.equal(layout.window_index[layout.reverse_index], torch.arange(len(window_index)))


def test_windows_are_8x8_patches_cut_at_the_edges() -> None:
    # One frame of 20 x 10 patches = 10 x 5 merged tokens: windows of 4x4 tokens (64 patches),
    # rows 4 + 4 + 2 tokens, columns 4 + 1 tokens.
    layout = window_layout([(1, 20, 10)], window_size=112)
    sizes = (layout.cu_window_seqlens[1:] - layout.cu_window_seqlens[:-1]).tolist()
    assert sizes == [64, 16, 64, 16, 32, 8]
    assert layout.max_window_seqlen == 64 and layout.cu_seqlens.tolist() == [0, 200]


def test_packed_tower_equals_transformers_and_each_item_alone(models) -> None:
    reference, module = models
    grids = torch.tensor([[1, 20, 34], [3, 8, 8], [1, 2, 2], [2, 18, 16], [1, 26, 6]])
    torch.manual_seed(0)
    pixel_values = torch.randn(int(grids.prod(-1).sum()), PATCH_DIM)
    visual = module.model.model.visual
    with torch.no_grad():
        packed = packed_tower(visual, pixel_values, grids)
        torch.testing.assert_close(
            packed, reference.model.visual(pixel_values, grid_thw=grids).pooler_output, rtol=1e-4, atol=1e-5
        )
        rows, tokens = 0, 0
        for grid in grids:
            num_rows = int(grid.prod())
            alone = reference.model.visual(
                pixel_values[rows : rows + num_rows], grid_thw=grid[None]
            ).pooler_output
            torch.testing.assert_close(packed[tokens : tokens + num_rows // 4], alone, rtol=1e-4, atol=1e-5)
            rows, tokens = rows + num_rows, tokens + num_rows // 4


def test_nothing_leaks_across_items_or_out_of_a_window(models) -> None:
    """Changing one image changes no other item's features; with the full-attention block removed,
    changing one window changes no other window of the same image."""
    _, module = models
    visual = module.model.model.visual
    grids = torch.tensor([[1, 16, 16], [2, 8, 8], [1, 16, 16]])
    torch.manual_seed(1)
    pixel_values = torch.randn(int(grids.prod(-1).sum()), PATCH_DIM)
    changed = pixel_values.clone()
    changed[:256] += 1.0  # the first image only
    with torch.no_grad():
        before, after = packed_tower(visual, pixel_values, grids), packed_tower(visual, changed, grids)
        assert not torch.allclose(before[:64], after[:64])
        assert torch.equal(before[64:], after[64:])
        full_blocks = visual.fullatt_block_indexes
        visual.fullatt_block_indexes = []
        try:
            one = torch.tensor([[1, 16, 16]])  # 8 x 8 merged tokens: four windows of 4 x 4
            image = pixel_values[:256].clone()
            window_changed = image.clone()
            window_changed[:4] += 1.0  # merged token (0, 0): the top-left window
            first, second = packed_tower(visual, image, one), packed_tower(visual, window_changed, one)
        finally:
            visual.fullatt_block_indexes = full_blocks
    merged = torch.arange(64).reshape(8, 8)
    top_left = merged[:4, :4].flatten()
    others = merged.flatten()[~torch.isin(merged.flatten(), top_left)]
    assert not torch.allclose(first[top_left], second[top_left])
    assert torch.equal(first[others], second[others])
