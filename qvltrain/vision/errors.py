"""The typed, counted skip raised for visual inputs that cannot become patch rows."""

from __future__ import annotations

from typing import Literal, get_args

SkipReason = Literal[
    "truncated_image",  # the image stream ends early (partial download, cut file)
    "not_an_image",  # the bytes are no image format PIL knows
    "empty_image",  # an image with zero width or height
    "image_too_large",  # PIL's decompression-bomb guard refused it
    "aspect_ratio",  # max(h, w) / min(h, w) > 200: no 28-px grid fits it
    "corrupt_video",  # the container or stream cannot be opened or decoded
    "empty_video",  # no bytes, or a stream without frames
    "short_video",  # fewer than 2 frames: no temporal patch of depth 2 can be made
    "decode_timeout",  # decoding took longer than its time budget
]
SKIP_REASONS: tuple[str, ...] = get_args(SkipReason)


class VisualInputError(ValueError):
    """A visual input that is skipped, never trained on; the data pipeline counts it by `reason`.

    The message names the sample so a skip report can point at the shard member to inspect.
    """

    def __init__(self, reason: SkipReason, name: str, detail: str = "") -> None:
        assert reason in SKIP_REASONS, f"unknown skip reason {reason!r}"
        message = f"{name}: {reason}" + (f" ({detail})" if detail else "")
        super().__init__(message)
        self.reason: SkipReason = reason
        self.name = name
        self.detail = detail

    def __reduce__(self):
        # DataLoader workers pickle exceptions to the main process; keep the typed fields.
        return (type(self), (self.reason, self.name, self.detail))
