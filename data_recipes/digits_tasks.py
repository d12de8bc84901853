"""The digits tasks as generation specs -> shard samples (caption, grounding, chat, video).

Every sample is made from a small JSON-able spec drawn by a seeded RNG (which source digits, where),
so the same arguments give the same bytes, and the split is by SOURCE IMAGE: a spec of the
validation split only uses validation digits (data_recipes.digits_source.split_indices).
"""

from __future__ import annotations

import io
import random

import numpy as np

from data_recipes.digits_source import digit_image, load_digits, paste_digits
from qvltrain.shards.recipe_media import encode_png, extract_frames
from qvltrain.shards.recipe_tools import RecipeSample
from qvltrain.vision.budgets import ImageBudget, VideoBudget
from qvltrain.vision.resize import smart_resize

CANVAS = 112
"""Grounding and chat canvases are CANVAS x CANVAS pixels."""
GLYPH = 28
"""Side of a digit pasted on a canvas (one 28x28 merged token at the native resolution)."""
IMAGE_BUDGET = ImageBudget(min_pixels=3136, max_pixels=50176)
"""4 tokens for a caption digit, 16 for a canvas; conf/data/digits_*.yaml use the same budget."""
CAPTION_SIDES = tuple(
    side
    for side in range(28, 57)
    if smart_resize(side, side, min_pixels=IMAGE_BUDGET.min_pixels, max_pixels=IMAGE_BUDGET.max_pixels)
    == (56, 56)
)
"""Caption digit sides: those IMAGE_BUDGET resizes to one 56 x 56 window (4 merged tokens).
28..56 except 38, which transformers' float rounding in smart_resize sends to 84 x 84: one card in
29 would carry 9 tokens, too few such cards to learn that layout from, and the task is reading."""
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
VIDEO_SIDE, VIDEO_FRAMES, VIDEO_FPS = 84, 8, 4
VIDEO_BUDGET = VideoBudget(
    total_pixels=16 * 3136, min_pixels=3136, max_pixels=7056, fps=4.0, min_frames=4, max_frames=8
)
"""The frames the recipe stores: every frame of the 2-second, 4 fps clip."""


def _label(index: int) -> int:
    return int(load_digits().labels[index])


def draw_spec(task: str, rng: random.Random, pool: np.ndarray) -> dict:
    """A generation spec for one sample of `task`, using only digits of `pool`."""
    if task == "caption":
        return {"task": task, "digit": int(rng.choice(pool)), "side": rng.choice(CAPTION_SIDES)}
    if task == "video":
        direction = rng.choice(sorted(DIRECTIONS))
        return {
            "task": task,
            "digit": int(rng.choice(pool)),
            "direction": direction,
            "start": rng.randint(0, 28),
        }
    # Grounding canvases hold one digit (the box is asked by its label); chat canvases one to three,
    # read left to right. Locating a digit is the slowest skill for a tiny model to pick up (it must
    # read positions through M-RoPE alone: the tower has no absolute position embedding), so the
    # demo keeps that task to the size it learns within its CPU budget.
    target = 1 if task == "grounding" else rng.randint(1, 3)
    placements, labels = [], set()
    for _ in range(200):  # rejection sampling: distinct labels, no overlap
        if len(placements) == target:
            break
        index = int(rng.choice(pool))
        x, y = rng.randint(0, CANVAS - GLYPH), rng.randint(0, CANVAS - GLYPH)
        overlaps = any(abs(x - px) < GLYPH and abs(y - py) < GLYPH for _, px, py, _ in placements)
        if _label(index) not in labels and not overlaps:
            placements.append((index, x, y, GLYPH))
            labels.add(_label(index))
    return {"task": task, "placements": placements, "asked": rng.randrange(len(placements))}


def _canvas_png(placements: list) -> tuple[bytes, list[int]]:
    image = paste_digits((CANVAS, CANVAS), [tuple(p) for p in placements])
    return encode_png(image), [CANVAS, CANVAS]


def _sample(task: str, messages: list[dict], size: list[int] | None, media: dict[str, bytes]) -> RecipeSample:
    meta = {"source": "digits"}
    if size is not None:
        meta["image_sizes"] = [size]
    return RecipeSample({"task": task, "messages": messages, "meta": meta}, media)


def caption_sample(spec: dict) -> RecipeSample:
    image = digit_image(spec["digit"], spec["side"]).convert("RGB")
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "file": "0.png"}, {"type": "text", "text": "What is written?"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": f"a handwritten {_label(spec['digit'])}"}],
        },
    ]
    return _sample("caption", messages, list(image.size), {"0.png": encode_png(image)})


def grounding_sample(spec: dict) -> RecipeSample:
    png, size = _canvas_png(spec["placements"])
    index, x, y, side = spec["placements"][spec["asked"]]
    messages = [
        {"role": "user", "content": [
            {"type": "image", "file": "0.png"},
            {"type": "text", "text": "Where is "}, {"type": "ref", "text": f"the {_label(index)}"},
            {"type": "text", "text": "?"}]},
        {"role": "assistant", "content": [
            {"type": "ref", "text": f"the {_label(index)}"}, {"type": "box", "bbox": [x, y, x + side, y + side], "image": 0}]},
    ]  # fmt: skip
    return _sample("grounding", messages, size, {"0.png": png})


def chat_sample(spec: dict) -> RecipeSample:
    png, size = _canvas_png(spec["placements"])
    ordered = sorted(spec["placements"], key=lambda placement: placement[1])  # left to right
    labels = [str(_label(index)) for index, *_ in ordered]
    listed = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
    count = len(labels)
    messages = [
        {"role": "user", "content": [{"type": "image", "file": "0.png"}, {"type": "text", "text": "How many digits are there?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": f"{count} digit{'s' if count > 1 else ''}."}]},
        {"role": "user", "content": [{"type": "text", "text": "Read them from left to right."}]},
        {"role": "assistant", "content": [{"type": "text", "text": f"{listed}."}]},
    ]  # fmt: skip
    return _sample("chat", messages, size, {"0.png": png})


def moving_digit_mp4(spec: dict) -> bytes:
    """The clip encoded with PyAV (H.264 when available), as a real video file would arrive."""
    import av

    glyph = np.asarray(digit_image(spec["digit"], GLYPH).convert("RGB"))
    step_x, step_y = DIRECTIONS[spec["direction"]]
    travel = (VIDEO_SIDE - GLYPH) // (VIDEO_FRAMES - 1)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=VIDEO_FPS)
        stream.height = stream.width = VIDEO_SIDE
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "18", "threads": "1"}
        for frame_index in range(VIDEO_FRAMES):
            frame = np.full((VIDEO_SIDE, VIDEO_SIDE, 3), 255, dtype=np.uint8)
            offset = frame_index * travel
            x = offset if step_x > 0 else (VIDEO_SIDE - GLYPH - offset if step_x < 0 else spec["start"])
            y = offset if step_y > 0 else (VIDEO_SIDE - GLYPH - offset if step_y < 0 else spec["start"])
            frame[y : y + GLYPH, x : x + GLYPH] = glyph
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def video_sample(spec: dict) -> RecipeSample:
    frames = extract_frames(moving_digit_mp4(spec), VIDEO_BUDGET, f"digit video {spec}")
    names = [f"0.f{number:03d}.jpg" for number in range(len(frames.frames))]
    messages = [
        {"role": "user", "content": [
            {"type": "video", "frames": names, "timestamps": frames.timestamps},
            {"type": "text", "text": "Which way does the digit move?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": spec["direction"]}]},
    ]  # fmt: skip
    sample = _sample("video", messages, None, dict(zip(names, frames.frames, strict=True)))
    sample.sample["meta"]["video_sizes"] = [[frames.width, frames.height]]
    return sample


CONVERTERS = {
    "caption": caption_sample,
    "grounding": grounding_sample,
    "chat": chat_sample,
    "video": video_sample,
}


def convert_spec(spec: dict) -> RecipeSample:
    return CONVERTERS[spec["task"]](spec)
