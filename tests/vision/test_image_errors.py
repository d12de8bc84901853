"""Bad image input becomes a typed, counted skip (VisualInputError.reason), never a crash."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from qvltrain.vision import SKIP_REASONS, ImageBudget, VisualInputError, image_to_patches, load_image_patches
from tests.vision.media import encode, smooth_pixels

BUDGET = ImageBudget(min_pixels=3136, max_pixels=1_003_520)


def skip_reason(data: bytes) -> str:
    with pytest.raises(VisualInputError, match="shard-0/key-9") as caught:
        load_image_patches(data, BUDGET, "shard-0/key-9")
    assert caught.value.reason in SKIP_REASONS
    return caught.value.reason


def jpeg(height: int = 64, width: int = 64) -> bytes:
    return encode(Image.fromarray(smooth_pixels(height, width, 0)), "JPEG")


def test_truncated_jpeg() -> None:
    data = jpeg(256, 256)
    assert skip_reason(data[: len(data) // 2]) == "truncated_image"


def test_truncated_png() -> None:
    data = encode(Image.fromarray(smooth_pixels(256, 256, 1)), "PNG")
    assert skip_reason(data[: len(data) // 2]) == "truncated_image"


def test_bytes_that_are_no_image() -> None:
    assert skip_reason(b"<html>404 not found</html>" * 10) == "not_an_image"


def test_no_bytes_at_all() -> None:
    assert skip_reason(b"") == "empty_image"


def test_zero_size_image() -> None:
    # A header declaring width 0: PIL refuses to identify it.
    header = b"P6\n0 4\n255\n"
    assert skip_reason(header) == "not_an_image"
    # An in-memory image with a zero side (a recipe that cropped to nothing).
    with pytest.raises(VisualInputError) as caught:
        image_to_patches(Image.new("RGB", (0, 10)), BUDGET, "crop")
    assert caught.value.reason == "empty_image"


def test_aspect_ratio_over_200() -> None:
    assert skip_reason(encode(Image.new("L", (403, 2)), "PNG")) == "aspect_ratio"


def test_decompression_bomb(monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 64x64 image is then > 2x the limit
    assert skip_reason(jpeg()) == "image_too_large"


def test_skip_survives_pickling_across_worker_processes() -> None:
    error = VisualInputError("truncated_image", "shard-3/key-1", "cut at 50%")
    restored = pickle.loads(pickle.dumps(error))
    assert (restored.reason, restored.name, str(restored)) == (error.reason, error.name, str(error))


def test_good_images_of_odd_modes_do_not_skip() -> None:
    pixels = smooth_pixels(30, 50, 2)
    for image in (Image.fromarray(pixels).convert("CMYK"), Image.fromarray(pixels[..., 0]).convert("1")):
        fmt = "JPEG" if image.mode == "CMYK" else "PNG"
        patches = load_image_patches(encode(image, fmt), BUDGET, "ok")
        assert patches.grid_thw[0] == 1 and np.asarray(patches.pixels).dtype == np.uint8
