"""Vision side: Naive Dynamic Resolution for images and video, from bytes to resized uint8 pixels.

Loader: decode_image / image_to_patches / video_to_patches / frames_to_patches -> VisualPatches.
Model side: device.to_pixel_values cuts patch rows, normalises and makes the second image frame.
Planning: tokens.image_num_tokens / video_num_tokens from sizes alone. See docs/vision.md.
"""

from qvltrain.vision.budgets import ImageBudget, VideoBudget
from qvltrain.vision.device import collate_patches, patches_to_pixel_values, to_pixel_values
from qvltrain.vision.errors import SKIP_REASONS, SkipReason, VisualInputError
from qvltrain.vision.image import decode_image, image_to_patches, image_to_reference_rows, load_image_patches
from qvltrain.vision.patches import VisualPatches
from qvltrain.vision.resize import smart_resize
from qvltrain.vision.tokens import image_grid, image_num_tokens, video_grid, video_num_tokens
from qvltrain.vision.video import frames_to_patches, video_to_patches

__all__ = [
    "SKIP_REASONS",
    "ImageBudget",
    "SkipReason",
    "VideoBudget",
    "VisualInputError",
    "VisualPatches",
    "collate_patches",
    "decode_image",
    "frames_to_patches",
    "image_grid",
    "image_num_tokens",
    "image_to_patches",
    "image_to_reference_rows",
    "load_image_patches",
    "patches_to_pixel_values",
    "smart_resize",
    "to_pixel_values",
    "video_grid",
    "video_num_tokens",
    "video_to_patches",
]
