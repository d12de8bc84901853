"""The shard sample schema (docs/shard-format.md) as checks on one KEY.json and its media names.

Pure structure: no media is decoded here (check.py reads sizes from media headers). Each check
returns human-readable problems instead of raising, so a validator can report every problem of a
sample at once and a recipe can turn them into one counted bad record.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from qvltrain.data.decode import TASKS
from qvltrain.data.reader import member_name

ROLES = ("system", "user", "assistant")
ITEM_TYPES = ("text", "ref", "box", "image", "video")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")
VIDEO_EXTENSIONS = ("mp4", "webm", "mkv", "avi", "mov")


def extension(file_name: str) -> str:
    return file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""


def visual_items(sample: dict) -> list[dict]:
    """Image and video items of a sample in order of appearance (the order grids are given in)."""
    items = []
    for message in sample.get("messages", []):
        content = message.get("content", []) if isinstance(message, dict) else []
        if isinstance(content, list):
            items += [
                item for item in content if isinstance(item, dict) and item.get("type") in ("image", "video")
            ]
    return items


def media_files(item: dict) -> list[str]:
    """Shard member suffixes a visual item reads: its file, or its frames."""
    if item.get("type") == "video" and "frames" in item:
        return list(item["frames"]) if isinstance(item["frames"], list) else []
    return [item["file"]] if isinstance(item.get("file"), str) else []


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_size(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in value)
    )


def _check_media_name(
    file_name: Any, allowed: tuple[str, ...], media_names: Collection[str], where: str
) -> list[str]:
    if not isinstance(file_name, str) or not file_name:
        return [f"{where}: file must be a non-empty string, got {file_name!r}"]
    problems = []
    if "/" in file_name:
        problems.append(f"{where}: file {file_name!r} must not contain '/'")
    if extension(file_name) not in allowed:
        problems.append(f"{where}: file {file_name!r} must end in one of {allowed}")
    if member_name(file_name) not in media_names:
        problems.append(f"{where}: media member {file_name!r} is missing from the shard")
    return problems


def _check_video(item: dict, media_names: Collection[str], where: str) -> list[str]:
    if "frames" not in item:
        return _check_media_name(item.get("file"), VIDEO_EXTENSIONS, media_names, where)
    frames, timestamps = item.get("frames"), item.get("timestamps")
    if not isinstance(frames, list) or len(frames) < 2:
        return [f"{where}: frames must list at least 2 frame files"]
    problems = []
    for index, frame in enumerate(frames):
        problems += _check_media_name(frame, IMAGE_EXTENSIONS, media_names, f"{where}.frames[{index}]")
    if not isinstance(timestamps, list) or len(timestamps) != len(frames):
        problems.append(f"{where}: timestamps must be a list of {len(frames)} numbers (one per frame)")
    elif not all(_is_number(value) for value in timestamps) or any(
        later <= earlier for earlier, later in zip(timestamps, timestamps[1:], strict=False)
    ):
        problems.append(f"{where}: timestamps must be finite seconds, strictly increasing")
    return problems


def _check_box(item: dict, image_sizes: list, num_images: int, where: str) -> list[str]:
    bbox = item.get("bbox")
    if not isinstance(bbox, list | tuple) or len(bbox) != 4 or not all(_is_number(value) for value in bbox):
        return [f"{where}: bbox must be 4 finite numbers [x1, y1, x2, y2], got {bbox!r}"]
    image_index = item.get("image", 0 if num_images == 1 else None)
    if not isinstance(image_index, int) or not 0 <= image_index < num_images:
        return [f"{where}: box names image {image_index!r}; the sample has {num_images} image(s)"]
    x1, y1, x2, y2 = bbox
    if not (x1 < x2 and y1 < y2):
        return [f"{where}: bbox {list(bbox)} needs x1 < x2 and y1 < y2 (pixels, not x/y/width/height)"]
    if image_index < len(image_sizes) and _is_size(image_sizes[image_index]):
        width, height = image_sizes[image_index]
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            return [f"{where}: bbox {list(bbox)} reaches outside its {width}x{height} image"]
    return []


def _check_items(sample: dict, media_names: Collection[str]) -> tuple[list[str], int, int]:
    """Problems of all messages, the number of image items and of video items."""
    messages = sample.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["messages must be a non-empty list"], 0, 0
    image_sizes = (
        sample.get("meta", {}).get("image_sizes", []) if isinstance(sample.get("meta"), dict) else []
    )
    num_images = sum(item.get("type") == "image" for item in visual_items(sample))
    problems: list[str] = []
    seen_images = num_videos = 0
    for message_index, message in enumerate(messages):
        where = f"messages[{message_index}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            problems.append(f"{where}: must be an object whose role is one of {ROLES}")
            continue
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            problems.append(f"{where}: content must be a string or a list of items")
            continue
        for item_index, item in enumerate(content):
            item_where = f"{where}.content[{item_index}]"
            item_type = item.get("type") if isinstance(item, dict) else None
            if item_type not in ITEM_TYPES:
                problems.append(f"{item_where}: type must be one of {ITEM_TYPES}, got {item_type!r}")
            elif item_type in ("text", "ref") and not isinstance(item.get("text"), str):
                problems.append(f"{item_where}: {item_type} needs a string 'text'")
            elif item_type == "ref" and not item["text"]:
                problems.append(f"{item_where}: a ref phrase must not be empty")
            elif item_type == "box":
                problems += _check_box(item, image_sizes, num_images, item_where)
            elif item_type == "image":
                problems += _check_media_name(item.get("file"), IMAGE_EXTENSIONS, media_names, item_where)
                seen_images += 1
            elif item_type == "video":
                problems += _check_video(item, media_names, item_where)
                num_videos += 1
    return problems, seen_images, num_videos


def _check_meta(meta: Any, num_images: int, num_videos: int) -> list[str]:
    if not isinstance(meta, dict):
        return ["meta must be an object"]
    problems = []
    if not isinstance(meta.get("source"), str) or not meta["source"]:
        problems.append("meta.source must name the dataset (a non-empty string)")
    image_sizes = meta.get("image_sizes", [])
    if (
        not isinstance(image_sizes, list)
        or len(image_sizes) != num_images
        or not all(map(_is_size, image_sizes))
    ):
        problems.append(f"meta.image_sizes must list {num_images} [width, height] pairs (one per image item)")
    if "video_sizes" in meta or num_videos:
        video_sizes = meta.get("video_sizes")
        if (
            not isinstance(video_sizes, list)
            or len(video_sizes) != num_videos
            or not all(map(_is_size, video_sizes))
        ):
            problems.append(
                f"meta.video_sizes must list {num_videos} [width, height] pairs (one per video item)"
            )
    num_tokens = meta.get("num_tokens")
    if not isinstance(num_tokens, int) or isinstance(num_tokens, bool) or num_tokens <= 0:
        problems.append(f"meta.num_tokens must be a positive int, got {num_tokens!r}")
    num_visual = meta.get("num_visual_tokens", 0)
    if (
        not isinstance(num_visual, int)
        or num_visual < 0
        or (isinstance(num_tokens, int) and num_visual > num_tokens)
    ):
        problems.append(f"meta.num_visual_tokens must be an int in [0, num_tokens], got {num_visual!r}")
    return problems


def check_sample(sample: Any, media_names: Collection[str]) -> list[str]:
    """Every schema problem of one KEY.json whose shard holds members KEY.<name> for `media_names`.

    An empty list means the sample is valid. Media named by no item is a problem too: it is either a
    recipe bug or a file the loader would silently never read.
    """
    if not isinstance(sample, dict):
        return ["KEY.json must hold an object"]
    problems = []
    if sample.get("task") not in TASKS:
        problems.append(f"task must be one of {TASKS}, got {sample.get('task')!r}")
    item_problems, num_images, num_videos = _check_items(sample, media_names)
    problems += item_problems
    problems += _check_meta(sample.get("meta"), num_images, num_videos)
    referenced = {member_name(name) for item in visual_items(sample) for name in media_files(item)}
    for name in sorted(set(media_names) - referenced - {"json"}):
        problems.append(f"media member {name!r} is named by no image or video item")
    return problems
