"""The fused device step: uint8 rows of images and videos -> normalised [P, 1176] in the reference order."""

from __future__ import annotations

import pytest
import torch

from qvltrain.vision import VisualPatches, collate_patches, patches_to_pixel_values, rows_to_pixel_values
from qvltrain.vision.layout import CLIP_MEAN, CLIP_STD


def naive_pixel_values(patches: VisualPatches) -> torch.Tensor:
    """Straight from the facts page: rescale, normalise, [C][t][14][14] with t duplicated for images."""
    rows = patches.rows.double().view(patches.num_patches, 3, -1, 196) / 255.0
    if patches.temporal_repeat == 2:
        rows = torch.cat([rows, rows], dim=2)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float64).view(1, 3, 1, 1)
    return ((rows - mean) / std).reshape(patches.num_patches, 1176).float()


def random_patches(grid_thw: tuple[int, int, int], temporal_repeat: int, seed: int) -> VisualPatches:
    generator = torch.Generator().manual_seed(seed)
    t, h, w = grid_thw
    row_bytes = 1176 // temporal_repeat
    rows = torch.randint(0, 256, (t * h * w, row_bytes), dtype=torch.uint8, generator=generator)
    return VisualPatches(rows=rows, grid_thw=grid_thw, temporal_repeat=temporal_repeat)


MIXED = [
    random_patches((1, 4, 6), 2, 0),
    random_patches((1, 2, 2), 2, 1),
    random_patches((3, 4, 4), 1, 2),
    random_patches((1, 6, 2), 2, 3),
    random_patches((2, 2, 4), 1, 4),
]


def test_mixed_batch_equals_each_item_in_order() -> None:
    pixel_rows, grid_thw, temporal_repeat = collate_patches(MIXED)
    assert pixel_rows.shape == (24 + 4 + 2 * 48 + 12 + 2 * 16, 588)
    values = rows_to_pixel_values(pixel_rows, grid_thw, temporal_repeat)
    expected = torch.cat([naive_pixel_values(item) for item in MIXED])
    assert values.shape == (24 + 4 + 48 + 12 + 16, 1176) and values.dtype == torch.float32
    torch.testing.assert_close(values, expected, rtol=0, atol=1e-6)


def test_image_frame_is_duplicated_into_both_temporal_slots() -> None:
    values = patches_to_pixel_values(MIXED[0]).view(-1, 3, 2, 196)
    assert torch.equal(values[:, :, 0], values[:, :, 1])


def test_bfloat16_output_is_the_rounded_float32() -> None:
    pixel_rows, grid_thw, temporal_repeat = collate_patches(MIXED)
    values = rows_to_pixel_values(pixel_rows, grid_thw, temporal_repeat, dtype=torch.bfloat16)
    reference = rows_to_pixel_values(pixel_rows, grid_thw, temporal_repeat).to(torch.bfloat16)
    assert values.dtype == torch.bfloat16
    torch.testing.assert_close(values.float(), reference.float(), rtol=0, atol=1e-2)


def test_mismatched_rows_and_grid_are_refused() -> None:
    pixel_rows, grid_thw, temporal_repeat = collate_patches(MIXED)
    with pytest.raises(ValueError, match="needs|need"):
        rows_to_pixel_values(pixel_rows[:-1], grid_thw, temporal_repeat)
    with pytest.raises(ValueError, match="uint8"):
        rows_to_pixel_values(pixel_rows.float(), grid_thw, temporal_repeat)


def test_empty_batch_collates_to_empty_tensors() -> None:
    pixel_rows, grid_thw, temporal_repeat = collate_patches([])
    assert rows_to_pixel_values(pixel_rows, grid_thw, temporal_repeat).shape == (0, 1176)


@pytest.mark.gpu
def test_cuda_equals_cpu() -> None:
    pixel_rows, grid_thw, temporal_repeat = collate_patches(MIXED)
    on_cpu = rows_to_pixel_values(pixel_rows, grid_thw, temporal_repeat)
    on_gpu = rows_to_pixel_values(pixel_rows.cuda(), grid_thw.cuda(), temporal_repeat.cuda())
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=0, atol=1e-6)
