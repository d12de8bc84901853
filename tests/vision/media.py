"""Test media made by code: seeded images in many modes and sizes, tiny videos written with PyAV."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image


def smooth_pixels(height: int, width: int, seed: int) -> np.ndarray:
    """[H, W, 3] uint8: a random low-frequency picture plus noise, cheap at any size."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8))
    base = np.asarray(coarse.resize((width, height), Image.Resampling.BILINEAR), dtype=np.int16)
    noise = rng.integers(-20, 21, (height, width, 3), dtype=np.int16)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


@dataclass
class ImageCase:
    name: str
    data: bytes
    min_pixels: int
    max_pixels: int


def _in_mode(pixels: np.ndarray, mode: str, seed: int) -> tuple[Image.Image, str]:
    """(image in `mode`, container format able to hold it)."""
    rgb = Image.fromarray(pixels)
    if mode == "RGB":
        return rgb, "JPEG" if seed % 2 else "PNG"
    if mode in ("L", "CMYK"):
        return rgb.convert(mode), "JPEG"
    if mode == "I;16":
        wide = pixels[..., 0].astype(np.uint16) * 257
        return Image.fromarray(wide), "PNG"
    if mode == "P+transparency":
        palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
        palette.info["transparency"] = 3
        return palette, "PNG"
    if mode in ("LA", "RGBA"):
        alpha = Image.fromarray(
            np.random.default_rng(seed).integers(0, 256, pixels.shape[:2], dtype=np.uint8)
        )
        base = rgb.convert(mode[:-1])
        base.putalpha(alpha)
        return base, "PNG"
    if mode in ("P", "1"):
        return rgb.convert(mode), "PNG"
    raise AssertionError(mode)


MODES = ("RGB", "L", "LA", "P", "P+transparency", "RGBA", "CMYK", "I;16", "1")
BUDGETS = ((56 * 56, 28 * 28 * 1280), (256 * 784, 1280 * 784), (4 * 784, 16384 * 784), (784, 64 * 784))
EXTREME_SIZES = (
    (1, 1), (1, 200), (200, 1), (3, 600), (13, 13), (14, 14), (27, 29), (28, 28), (28, 224), (224, 224),
    (480, 640), (42, 70), (70, 70), (98, 126), (10, 2000), (2000, 10), (1500, 1500), (3000, 2000),
)  # fmt: skip


def image_cases(num_random: int = 40, seed: int = 0) -> list[ImageCase]:
    """Extreme sizes plus random ones, cycling through PIL modes and budgets; some carry EXIF rotation."""
    rng = np.random.default_rng(seed)
    sizes = list(EXTREME_SIZES)
    while len(sizes) < len(EXTREME_SIZES) + num_random:
        height, width = (int(v) for v in np.exp(rng.uniform(0, np.log(2500), 2)))
        if max(height, width) / min(height, width) <= 200:
            sizes.append((height, width))
    cases = []
    for index, (height, width) in enumerate(sizes):
        mode = MODES[index % len(MODES)]
        min_pixels, max_pixels = BUDGETS[index % len(BUDGETS)]
        image, fmt = _in_mode(smooth_pixels(height, width, seed + index), mode, index)
        params = {}
        if fmt == "JPEG" and index % 3 == 0:
            exif = Image.Exif()
            exif[0x0112] = (6, 3, 8, 2)[(index // 3) % 4]  # orientation: rotations and a mirror
            params["exif"] = exif.tobytes()
        name = f"img{index:03d}_{height}x{width}_{mode}_{fmt}"
        cases.append(ImageCase(name, encode(image, fmt, **params), min_pixels, max_pixels))
    return cases


def write_video(
    num_frames: int, fps: int = 10, size: tuple[int, int] = (48, 64), codec: str = "mpeg4", seed: int = 0
) -> bytes:
    """An encoded MP4 of moving smooth content (height, width = size)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        base = smooth_pixels(size[0], size[1] * 2, seed)
        for index in range(num_frames):
            shift = index * 2 % size[1]
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(base[:, shift : shift + size[1]]), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
