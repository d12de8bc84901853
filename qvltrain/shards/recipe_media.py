"""Media for recipes: source images kept as they are (or shrunk when asked), videos as sampled JPEG frames.

Images are decoded once while converting, so a broken file is a reported bad record, not a training
skip; their bytes are stored unchanged unless `max_pixels` asks to shrink them (boxes are then
scaled by the returned factors). Videos are decoded here, once, and stored as the frames the loader
would sample (VideoBudget fps and frame limits): training then never decodes a full video.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from qvltrain.shards.recipe_tools import BadRecord
from qvltrain.vision.budgets import VideoBudget
from qvltrain.vision.image import decode_image
from qvltrain.vision.sampling import num_sampled_frames, sample_frame_indices
from qvltrain.vision.video_decode import DecordVideo, call_with_timeout

STORED_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
"""PIL formats stored as they are, with the extension they get; other formats are re-encoded as PNG."""
BOX_TOLERANCE_PX = 1.0
"""Pixels a source box may overshoot the image border and still be clipped instead of rejected."""
JPEG_QUALITY = 95
"""Quality of re-encoded images and of extracted video frames."""


@dataclass(frozen=True)
class StoredImage:
    """An image as it goes into the shard."""

    data: bytes
    extension: str
    width: int
    """Width as the loader sees it (EXIF rotation applied): what meta.image_sizes records."""
    height: int
    scale: tuple[float, float]
    """(x, y) factors from source pixels to stored pixels: (1, 1) unless the image was shrunk."""

    def pixel_box(self, bbox: object, box_format: str = "xyxy") -> list[float]:
        """A source box (xyxy or COCO's xywh, source pixels) -> [x1, y1, x2, y2] on the stored image.

        Annotation tools overshoot the border by rounding: up to BOX_TOLERANCE_PX is clipped, more
        is a bad record (the box likely belongs to another image size or format).
        """
        if (
            not isinstance(bbox, list | tuple)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) and math.isfinite(v) for v in bbox)
        ):
            raise BadRecord("degenerate_box", f"box {bbox!r} must be 4 finite numbers")
        x1, y1, a, b = (float(value) for value in bbox)
        x2, y2 = (x1 + a, y1 + b) if box_format == "xywh" else (a, b)
        x_scale, y_scale = self.scale
        x1, x2, y1, y2 = x1 * x_scale, x2 * x_scale, y1 * y_scale, y2 * y_scale
        if not (x1 < x2 and y1 < y2):
            raise BadRecord("degenerate_box", f"{box_format} box {list(bbox)} has no area")
        if (
            min(x1, y1) < -BOX_TOLERANCE_PX
            or x2 > self.width + BOX_TOLERANCE_PX
            or y2 > self.height + BOX_TOLERANCE_PX
        ):
            raise BadRecord(
                "box_outside_image", f"{box_format} box {list(bbox)} on a {self.width}x{self.height} image"
            )
        clipped = (max(x1, 0.0), max(y1, 0.0), min(x2, self.width), min(y2, self.height))
        return [round(value, 2) for value in clipped]


def shrunk_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest size of the same aspect ratio with at most max_pixels pixels."""
    factor = math.sqrt(max_pixels / (width * height))
    return max(1, math.floor(width * factor)), max(1, math.floor(height * factor))


def encode_jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    # Fixed settings: libjpeg is deterministic for identical pixels and parameters.
    image.save(buffer, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buffer.getvalue()


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def store_image(data: bytes, name: str, max_pixels: int | None = None) -> StoredImage:
    """Check that `data` decodes (VisualInputError otherwise) and return what the shard stores."""
    image = decode_image(data, name)
    width, height = image.size
    with Image.open(io.BytesIO(data)) as header:
        source_format = header.format
        has_exif_rotation = header.getexif().get(0x0112, 1) != 1
    if max_pixels is not None and width * height > max_pixels:
        new_width, new_height = shrunk_size(width, height, max_pixels)
        resized = image.resize((new_width, new_height), resample=Image.Resampling.BICUBIC)
        return StoredImage(
            encode_jpeg(resized), "jpg", new_width, new_height, (new_width / width, new_height / height)
        )
    if source_format in STORED_EXTENSIONS and not (has_exif_rotation and source_format == "MPO"):
        return StoredImage(data, STORED_EXTENSIONS[source_format], width, height, (1.0, 1.0))
    return StoredImage(encode_png(image), "png", width, height, (1.0, 1.0))


def read_file(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as source:
        return source.read()


@dataclass(frozen=True)
class ExtractedFrames:
    """A video's sampled frames as JPEG bytes, with their times in seconds."""

    frames: list[bytes]
    timestamps: list[float]
    width: int
    height: int


def frames_from_arrays(
    frames_hwc: np.ndarray, timestamps: list[float], max_pixels: int | None = None
) -> ExtractedFrames:
    """Frames [n, H, W, 3] uint8 -> JPEG frames, shrunk under max_pixels when asked."""
    images = [Image.fromarray(frame) for frame in frames_hwc]
    width, height = images[0].size
    if max_pixels is not None and width * height > max_pixels:
        width, height = shrunk_size(width, height, max_pixels)
        images = [image.resize((width, height), resample=Image.Resampling.BICUBIC) for image in images]
    return ExtractedFrames([encode_jpeg(image) for image in images], timestamps, width, height)


def extract_frames(
    source: bytes | str | os.PathLike,
    budget: VideoBudget,
    name: str,
    max_pixels: int | None = None,
    timeout_s: float | None = 120.0,
) -> ExtractedFrames:
    """Decode the frames the loader would sample from this video (decord, under a time budget).

    Timestamps are frame index / container fps, rounded to microseconds so JSON stays short and
    stable; `frames_to_patches` then keeps every stored frame (their rate is the sampling rate).
    """

    def decode() -> ExtractedFrames:
        video = DecordVideo(source, name)
        num_frames = num_sampled_frames(video.info.num_frames, video.info.fps, budget, name)
        indices = sample_frame_indices(video.info.num_frames, num_frames)
        arrays = np.concatenate([chunk.numpy() for chunk in video.frames(indices)])
        timestamps = [round(index / video.info.fps, 6) for index in indices]
        return frames_from_arrays(arrays, timestamps, max_pixels)

    return call_with_timeout(decode, timeout_s, name)
