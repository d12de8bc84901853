"""Records in the formats users bring -> our sample schema (docs/formats.md), before anything else reads them.

    record = to_schema(json.loads(line))     # ours unchanged; ShareGPT / ms-swift / LLaMA-Factory / LLaVA converted

- ms-swift, LLaMA-Factory (`sharegpt` with `messages`) and OpenAI-style records:
  `{"messages": [{"role", "content": "<image>What is this?"}], "images": [...], "videos": [...]}`.
- LLaVA and ShareGPT: `{"conversations": [{"from": "human" | "gpt" | "system", "value": ...}],
  "image": "path" | [...], "images": [...], "videos": [...]}`.

Each `<image>` / `<video>` tag in a message's text becomes an image / video item at that place,
taking the next entry of `images` / `videos` in order; the counts must match (LLaMA-Factory's rule),
else the sample is a counted `media_tag_mismatch` skip, except that a record with no tag of a kind
at all has those media open its first user turn (LLaVA's convention, as data_recipes/llava.py). A media entry is a name: a member of the
sample in a tar shard (`jpg`, `0.jpg`), or a path (relative to the dataset's `media_root`) in a
JSON/JSONL dataset; `{"path": ...}` entries are accepted too. Converted records are `chat` samples.
"""

from __future__ import annotations

import re
from typing import Any

from qvltrain.text.errors import SkipSample

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
"""ShareGPT / LLaVA speaker names -> our roles; any other name is kept (and is an `unknown_role` skip)."""
TAG = re.compile(r"(<image>|<video>)")
MEDIA_KEYS = ("images", "image", "videos", "video")


def _media_list(record: dict, *keys: str) -> list[str]:
    for key in keys:
        value = record.get(key)
        if value is None:
            continue
        entries = value if isinstance(value, list) else [value]
        names = [entry.get("path") if isinstance(entry, dict) else entry for entry in entries]
        if not all(isinstance(name, str) and name for name in names):
            raise SkipSample("malformed_sample", f"{key!r} must list file names (or {{'path': ...}} objects)")
        return names
    return []


def _content(text: Any, images: list[str], videos: list[str], counts: list[int]) -> list[dict]:
    """A message text with tags -> content items; counts = [images used, videos used]."""
    if not isinstance(text, str):
        raise SkipSample("malformed_sample", f"message content {type(text).__name__}: expected a string")
    items: list[dict] = []
    for piece in TAG.split(text):
        if piece == "<image>":
            if counts[0] < len(images):
                items.append({"type": "image", "file": images[counts[0]]})
            counts[0] += 1
        elif piece == "<video>":
            if counts[1] < len(videos):
                items.append({"type": "video", "file": videos[counts[1]]})
            counts[1] += 1
        elif piece:
            items.append({"type": "text", "text": piece})
    return items


def _is_ours(record: dict) -> bool:
    messages = record.get("messages")
    if not isinstance(messages, list):
        return False
    has_media_keys = any(key in record for key in MEDIA_KEYS)
    return not has_media_keys or any(
        isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages
    )


def to_schema(record: Any) -> Any:
    """`record` in our schema: unchanged if it already is, converted from the formats above, else as
    given (the caller's checks report what is wrong). Raises SkipSample for a tag/media mismatch."""
    if not isinstance(record, dict) or _is_ours(record):
        return record
    if isinstance(record.get("messages"), list):
        turns = [
            (m.get("role"), m.get("content")) if isinstance(m, dict) else (None, m)
            for m in record["messages"]
        ]
    elif isinstance(record.get("conversations"), list):
        turns = [
            (ROLES.get(t.get("from"), t.get("from")), t.get("value")) if isinstance(t, dict) else (None, t)
            for t in record["conversations"]
        ]
    else:
        return record
    images, videos = _media_list(record, "images", "image"), _media_list(record, "videos", "video")
    counts = [0, 0]
    messages = [{"role": role, "content": _content(text, images, videos, counts)} for role, text in turns]
    users = [m for m in messages if m["role"] == "user"]
    for kind, used, given in (("<video>", counts[1], videos), ("<image>", counts[0], images)):
        if used == 0 and given and users:  # no tag at all: the media open the first user turn (LLaVA)
            users[0]["content"][:0] = [{"type": kind[1:-1], "file": name} for name in given]
        elif used != len(given):
            raise SkipSample(
                "media_tag_mismatch", f"{used} {kind} tag(s) in the messages but {len(given)} file(s) listed"
            )
    converted = {"task": "chat", "messages": messages}
    if isinstance(record.get("meta"), dict):
        converted["meta"] = record["meta"]
    return converted
