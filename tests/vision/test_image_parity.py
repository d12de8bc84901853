"""Our image rows (uint8 pixels + the device step) against transformers' Qwen2-VL PIL image processor (the oracle), 58 images."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from qvltrain.vision import (
    ImageBudget,
    collate_patches,
    decode_image,
    image_to_reference_rows,
    load_image_patches,
    patches_to_pixel_values,
    to_pixel_values,
)
from tests.vision.media import image_cases

CASES = image_cases()


@cache
def oracle(min_pixels: int, max_pixels: int) -> Qwen2VLImageProcessorPil:
    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)


def reference_rows(data: bytes, min_pixels: int, max_pixels: int) -> tuple[np.ndarray, tuple[int, ...]]:
    # transformers ignores EXIF orientation; we apply it, so the oracle gets the upright picture.
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    out = oracle(min_pixels, max_pixels)(images=[upright], return_tensors="np")
    return out["pixel_values"], tuple(int(v) for v in out["image_grid_thw"][0])


def test_the_case_set_covers_modes_sizes_and_exif() -> None:
    modes = {Image.open(io.BytesIO(case.data)).mode for case in CASES}
    assert len(CASES) >= 50
    assert {"RGB", "L", "LA", "P", "RGBA", "CMYK", "I;16", "1"} <= modes
    assert any(Image.open(io.BytesIO(case.data)).getexif().get(0x0112, 1) != 1 for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_rows_and_grid_equal_transformers(case) -> None:
    budget = ImageBudget(min_pixels=case.min_pixels, max_pixels=case.max_pixels)
    expected_rows, expected_grid = reference_rows(case.data, case.min_pixels, case.max_pixels)

    patches = load_image_patches(case.data, budget, case.name)  # the loader's uint8 path
    assert patches.grid_thw == expected_grid
    assert patches.pixels.dtype == torch.uint8 and patches.temporal_repeat == 2
    rows = patches_to_pixel_values(patches)  # the device step, here on the CPU
    assert rows.shape == expected_rows.shape == (patches.num_patches, 1176)
    torch.testing.assert_close(rows, torch.from_numpy(expected_rows), rtol=0, atol=1e-5)


def test_reference_rows_entry_point_equals_transformers() -> None:
    case = next(case for case in CASES if "480x640" in case.name)
    budget = ImageBudget(min_pixels=case.min_pixels, max_pixels=case.max_pixels)
    rows, grid = image_to_reference_rows(decode_image(case.data, case.name), budget)
    expected_rows, expected_grid = reference_rows(case.data, case.min_pixels, case.max_pixels)
    assert grid == expected_grid
    torch.testing.assert_close(rows, torch.from_numpy(expected_rows), rtol=0, atol=1e-5)


def test_a_collated_batch_equals_transformers_on_the_concatenation() -> None:
    chosen = CASES[5:12]
    patches = [
        load_image_patches(case.data, ImageBudget(case.min_pixels, case.max_pixels), case.name)
        for case in chosen
    ]
    pixels, grid_thw, temporal_repeat = collate_patches(patches)
    values = to_pixel_values(pixels, grid_thw, temporal_repeat)
    expected = np.concatenate(
        [reference_rows(case.data, case.min_pixels, case.max_pixels)[0] for case in chosen]
    )
    torch.testing.assert_close(values, torch.from_numpy(expected), rtol=0, atol=1e-5)


def test_exif_orientation_is_applied() -> None:
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait (rotate 90 degrees clockwise)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", exif=exif.tobytes())
    assert decode_image(buffer.getvalue(), "phone-photo").size == (20, 40)  # (width, height) swapped
