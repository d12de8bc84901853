"""An RGB PIL image's pixel memory as a tensor, without copying it out of PIL.

PIL keeps an RGB image as 4 bytes per pixel (R, G, B and one unused byte) and exports that memory
through the Arrow C data interface (`Image.__arrow_c_array__`, Pillow >= 11.2): a fixed-size list of
4 uint8 per pixel whose child array's buffer 1 is the pixel data. Reading that buffer's address from
the exported struct gives the tensor; the export capsule (whose release frees PIL's reference) rides
on the buffer object the tensor keeps, so the memory lives exactly as long as the tensor and its
views. `tobytes()` would instead pack the pixels to 3 bytes in chunks and join them (two copies; the cost
is in `python -m apps.bench.loader`'s per-sample work, docs/benchmarks.md).

Images PIL holds in several blocks (over its 16 MiB block size) cannot be exported; they, and an
older Pillow, take the copying path with the same [H, W, 4] result.
"""

from __future__ import annotations

import ctypes

import torch
from PIL import Image


class _ArrowArray(ctypes.Structure):
    """struct ArrowArray of the Arrow C data interface (a stable ABI)."""


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]

_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _exported_pixels(image: Image.Image) -> torch.Tensor | None:
    try:
        _, capsule = image.__arrow_c_array__()
    except (AttributeError, ValueError):  # older Pillow, or an image in several blocks
        return None
    pixels = _ArrowArray.from_address(_capsule_pointer(capsule, b"arrow_array"))
    if pixels.length != image.width * image.height or pixels.n_children != 1 or pixels.offset != 0:
        return None
    values = pixels.children[0][0]
    if values.n_buffers != 2 or values.offset != 0 or not values.buffers[1]:
        return None
    buffer = (ctypes.c_uint8 * (4 * image.width * image.height)).from_address(values.buffers[1])
    buffer.export = capsule  # keeps PIL's memory alive while any tensor over `buffer` is
    return torch.frombuffer(buffer, dtype=torch.uint8).view(image.height, image.width, 4)


def rgbx_pixels(image: Image.Image) -> torch.Tensor:
    """An RGB image -> [H, W, 4] uint8 (R, G, B, unused), PIL's own memory where it can be shared."""
    assert image.mode == "RGB", f"expected an RGB image, got {image.mode}"
    exported = _exported_pixels(image)
    if exported is not None:
        return exported
    copied = bytearray(image.tobytes("raw", "RGBX"))
    return torch.frombuffer(copied, dtype=torch.uint8).view(image.height, image.width, 4)
