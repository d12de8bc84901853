"""decord reading under a time budget: one bad file is a counted skip, never a stalled worker.

decord is known to hang on some files. It is called through ctypes, which releases the GIL, so
a watchdog thread can give up on it: the caller gets a `decode_timeout` skip and moves on, the
stuck decoder thread is abandoned (a daemon; it dies with the worker). Abandoned threads are
counted, and past `MAX_ABANDONED_DECODES` the worker raises, since each may hold a core and memory.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from qvltrain.vision.errors import VisualInputError

T = TypeVar("T")

MAX_ABANDONED_DECODES = 8
"""Abandoned (timed-out) decoder threads one process tolerates before failing loudly."""
FRAMES_PER_READ = 16
"""Frames decoded per decord call: bounds memory at source resolution (16 4K frames = 400 MB)."""

_abandoned_decodes = 0
_abandoned_lock = threading.Lock()


def call_with_timeout(work: Callable[[], T], timeout_s: float | None, name: str) -> T:
    """work() in a watchdog thread; VisualInputError('decode_timeout') when it overruns timeout_s."""
    global _abandoned_decodes
    if timeout_s is None:
        return work()
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # re-raised in the caller's thread below
            outcome["error"] = error

    thread = threading.Thread(target=run, name=f"decode:{name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        with _abandoned_lock:
            _abandoned_decodes += 1
            abandoned = _abandoned_decodes
        if abandoned > MAX_ABANDONED_DECODES:
            raise RuntimeError(
                f"{abandoned} video decodes overran their timeout in this process (last: {name}); "
                "pre-extract frames for these sources (docs/vision.md) or raise the timeout"
            )
        raise VisualInputError("decode_timeout", name, f"over {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


@dataclass
class VideoReaderInfo:
    """What the container says, before any frame is decoded."""

    num_frames: int
    fps: float


class DecordVideo:
    """An opened video: its info, and frames decoded on demand in bounded chunks."""

    def __init__(self, source: bytes | str | os.PathLike, name: str) -> None:
        import decord  # imported here: decord is only needed where videos are read

        self.name = name
        if isinstance(source, bytes | bytearray) and len(source) == 0:
            raise VisualInputError("empty_video", name, "0 bytes")
        stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else os.fspath(source)
        try:
            # One decoder thread: a loader worker owns one core.
            self._reader = decord.VideoReader(stream, ctx=decord.cpu(0), num_threads=1)
            num_frames = len(self._reader)
            fps = float(self._reader.get_avg_fps())
        except (decord.DECORDError, RuntimeError) as error:  # decord reports bad streams as either
            raise VisualInputError("corrupt_video", name, str(error).splitlines()[0][:200]) from error
        self.info = VideoReaderInfo(num_frames=num_frames, fps=fps)

    def frames(self, indices: list[int]) -> list[torch.Tensor]:
        """Chunks of decoded frames [n, H, W, 3] uint8 (as torch tensors), FRAMES_PER_READ at a time."""
        import decord

        chunks = []
        try:
            for start in range(0, len(indices), FRAMES_PER_READ):
                batch = self._reader.get_batch(indices[start : start + FRAMES_PER_READ])
                array = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
                chunks.append(torch.from_numpy(array))
        except (decord.DECORDError, RuntimeError) as error:  # decord reports bad streams as either
            raise VisualInputError("corrupt_video", self.name, str(error).splitlines()[0][:200]) from error
        return chunks
