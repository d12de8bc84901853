"""Images: bytes -> RGB PIL image -> resized uint8 pixels (the loader), or float32 reference rows (parity)."""

from __future__ import annotations

import io

import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from qvltrain.vision.budgets import ImageBudget
from qvltrain.vision.errors import VisualInputError
from qvltrain.vision.layout import FACTOR, PATCH_SIZE, TEMPORAL_PATCH_SIZE
from qvltrain.vision.patches import VisualPatches
from qvltrain.vision.pil_memory import rgbx_pixels
from qvltrain.vision.resize import check_size, smart_resize


def decode_image(data: bytes, name: str) -> Image.Image:
    """Encoded bytes -> decoded RGB image with its EXIF orientation applied.

    Raises VisualInputError: empty_image (no bytes), not_an_image (PIL cannot identify the bytes,
    which includes headers declaring a zero side), truncated_image (the pixel data is cut or
    broken), image_too_large (PIL's decompression-bomb guard).
    """
    if len(data) == 0:
        raise VisualInputError("empty_image", name, "0 bytes")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise VisualInputError("image_too_large", name, str(error)) from error
    except UnidentifiedImageError as error:
        raise VisualInputError("not_an_image", name, f"{len(data)} bytes PIL cannot identify") from error
    except (OSError, SyntaxError, ValueError) as error:  # identified, but the header is cut short
        raise VisualInputError("truncated_image", name, str(error)) from error
    try:
        # Decode now, so a cut file fails here as a counted skip and not later inside resize.
        image.load()
    except Image.DecompressionBombError as error:
        raise VisualInputError("image_too_large", name, str(error)) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise VisualInputError("truncated_image", name, f"{image.format}: {error}") from error
    return to_rgb(apply_exif_orientation(image), name)


def apply_exif_orientation(image: Image.Image) -> Image.Image:
    """The image as a viewer shows it (phone photos store rotation as an EXIF tag)."""
    # Reading the tag first avoids exif_transpose's full-image copy for the common upright case.
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(image)
    return image


def to_rgb(image: Image.Image, name: str) -> Image.Image:
    """Any PIL mode -> RGB, transparency composited onto white (as the reference processor does)."""
    check_size(image.height, image.width, name)
    has_alpha = "A" in image.getbands() or image.info.get("transparency") is not None
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode == "RGB":
        return image  # convert() would copy the whole image for nothing
    return image.convert("RGB")


def resize_image(image: Image.Image, budget: ImageBudget, name: str) -> Image.Image:
    """RGB image -> RGB image of smart_resize's size, PIL BICUBIC (the reference filter)."""
    height, width = smart_resize(
        image.height, image.width, min_pixels=budget.min_pixels, max_pixels=budget.max_pixels, name=name
    )
    if (height, width) == (image.height, image.width):
        return image  # PIL would return a copy with the same pixels
    return image.resize((width, height), resample=Image.Resampling.BICUBIC)


def image_to_patches(image: Image.Image, budget: ImageBudget, name: str = "<image>") -> VisualPatches:
    """RGB (or any-mode) image -> its resized pixels [H, W, 4] uint8 (RGBX) and grid (1, H/14, W/14).

    This is all the loader does per image: no copy out of PIL (pil_memory.py), no patch reorder, no
    float work, no second frame (the device step makes all three, see device.py).
    """
    if image.mode != "RGB" or image.info.get("transparency") is not None:
        image = to_rgb(image, name)
    resized = resize_image(image, budget, name)
    width, height = resized.size
    assert height % FACTOR == 0 and width % FACTOR == 0, f"{name}: resized to {width}x{height}"
    grid_thw = (1, height // PATCH_SIZE, width // PATCH_SIZE)
    return VisualPatches(pixels=rgbx_pixels(resized), grid_thw=grid_thw, temporal_repeat=TEMPORAL_PATCH_SIZE)


def load_image_patches(data: bytes, budget: ImageBudget, name: str) -> VisualPatches:
    """Encoded bytes -> resized uint8 pixels: the loader's whole image path."""
    return image_to_patches(decode_image(data, name), budget, name)


def image_to_reference_rows(
    image: Image.Image, budget: ImageBudget, name: str = "<image>"
) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """float32 rows [h*w, 1176] and grid (1, h, w), as transformers' image processor makes them.

    The same uint8 pixels and the same device step (patch cut, normalisation) training uses, on the CPU.
    """
    from qvltrain.vision.device import patches_to_pixel_values

    patches = image_to_patches(image, budget, name)
    return patches_to_pixel_values(patches), patches.grid_thw
