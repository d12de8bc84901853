"""The fused device step: uint8 pixels of images and videos -> patch rows [P, 1176], normalised, in the reference order."""

from __future__ import annotations

import pytest
import torch

from qvltrain.vision import VisualPatches, collate_patches, patches_to_pixel_values, to_pixel_values
from qvltrain.vision.layout import CLIP_MEAN, CLIP_STD
from qvltrain.vision.patches import pixels_shape


def naive_pixel_values(patches: VisualPatches) -> torch.Tensor:
    """Straight from the facts page, patch by patch in Python loops: the 2x2 merge windows in raster
    order, inside each its 4 patches in raster order; a row is [C][t][14][14], an image's frame twice;
    values rescaled and normalised in float64."""
    t, h, w = patches.grid_thw
    if patches.temporal_repeat == 2:
        rgb = patches.pixels[..., :3]  # RGBX: the fourth byte is unused
        frames = rgb.permute(2, 0, 1).unsqueeze(0).expand(2, 3, h * 14, w * 14)  # [2, C, H, W]
    else:
        frames = patches.pixels  # [2t, C, H, W]
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float64).view(3, 1, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float64).view(3, 1, 1, 1)
    rows = []
    for tube in range(t):
        for window_row in range(h // 2):
            for window_col in range(w // 2):
                for row in range(2):
                    for col in range(2):
                        y, x = (window_row * 2 + row) * 14, (window_col * 2 + col) * 14
                        patch = frames[2 * tube : 2 * tube + 2, :, y : y + 14, x : x + 14]  # [t, C, 14, 14]
                        patch = patch.permute(1, 0, 2, 3).double() / 255.0  # [C, t, 14, 14]
                        rows.append(((patch - mean) / std).reshape(1176))
    return torch.stack(rows).float()


def random_patches(grid_thw: tuple[int, int, int], temporal_repeat: int, seed: int) -> VisualPatches:
    generator = torch.Generator().manual_seed(seed)
    shape = pixels_shape(grid_thw, temporal_repeat)
    pixels = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    return VisualPatches(pixels=pixels, grid_thw=grid_thw, temporal_repeat=temporal_repeat)


MIXED = [
    random_patches((1, 4, 6), 2, 0),
    random_patches((1, 2, 2), 2, 1),
    random_patches((3, 4, 4), 1, 2),
    random_patches((1, 6, 2), 2, 3),
    random_patches((2, 2, 4), 1, 4),
]


def test_mixed_batch_equals_each_item_in_order() -> None:
    pixels, grid_thw, temporal_repeat = collate_patches(MIXED)
    assert all(p is item.pixels for p, item in zip(pixels, MIXED, strict=True))  # nothing copied
    values = to_pixel_values(pixels, grid_thw, temporal_repeat)
    expected = torch.cat([naive_pixel_values(item) for item in MIXED])
    assert values.shape == (24 + 4 + 48 + 12 + 16, 1176) and values.dtype == torch.float32
    torch.testing.assert_close(values, expected, rtol=0, atol=1e-6)


def test_the_unused_fourth_byte_of_an_image_is_ignored() -> None:
    item = MIXED[0]
    other = VisualPatches(item.pixels.clone(), item.grid_thw, item.temporal_repeat)
    other.pixels[..., 3] = 255 - other.pixels[..., 3]
    assert torch.equal(patches_to_pixel_values(other), patches_to_pixel_values(item))


def test_image_frame_is_duplicated_into_both_temporal_slots() -> None:
    values = patches_to_pixel_values(MIXED[0]).view(-1, 3, 2, 196)
    assert torch.equal(values[:, :, 0], values[:, :, 1])


def test_bfloat16_output_is_the_rounded_float32() -> None:
    pixels, grid_thw, temporal_repeat = collate_patches(MIXED)
    values = to_pixel_values(pixels, grid_thw, temporal_repeat, dtype=torch.bfloat16)
    reference = to_pixel_values(pixels, grid_thw, temporal_repeat).to(torch.bfloat16)
    assert values.dtype == torch.bfloat16
    torch.testing.assert_close(values.float(), reference.float(), rtol=0, atol=1e-2)


def test_mismatched_pixels_and_grid_are_refused() -> None:
    pixels, grid_thw, temporal_repeat = collate_patches(MIXED)
    with pytest.raises(ValueError, match="one of each"):
        to_pixel_values(pixels[:-1], grid_thw, temporal_repeat)
    with pytest.raises(ValueError, match=r"item 1: .* needs uint8 \[28, 28, 4\]"):
        to_pixel_values([pixels[0], pixels[0], *pixels[2:]], grid_thw, temporal_repeat)
    with pytest.raises(ValueError, match="uint8"):
        to_pixel_values([p.float() for p in pixels], grid_thw, temporal_repeat)


def test_empty_batch_collates_to_empty_tensors() -> None:
    pixels, grid_thw, temporal_repeat = collate_patches([])
    assert to_pixel_values(pixels, grid_thw, temporal_repeat).shape == (0, 1176)


@pytest.mark.gpu
def test_cuda_equals_cpu(gpu_device) -> None:
    pixels, grid_thw, temporal_repeat = collate_patches(MIXED)
    on_cpu = to_pixel_values(pixels, grid_thw, temporal_repeat)
    on_gpu = to_pixel_values(
        [p.to(gpu_device) for p in pixels], grid_thw.to(gpu_device), temporal_repeat.to(gpu_device)
    )
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=0, atol=1e-6)
