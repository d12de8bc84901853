"""Reading the layouts users arrive with: JSON arrays or JSONL files, and LLaVA-style conversations.

Records keep where they came from (`file: line 7`, `file[12]`) so a bad one is reported precisely.
A line that is not JSON becomes an `UnparsableRecord`, reported and skipped like any bad record.
"""

from __future__ import annotations

import json
import os

from qvltrain.shards.recipe_tools import BadRecord, SourceRecord, UnparsableRecord

ROLE_NAMES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
    "system": "system",
}  # fmt: skip
"""LLaVA's `from` values (and the OpenAI-style roles) -> our roles."""


def read_json_records(path: str, list_key: str | None = None) -> list[SourceRecord]:
    """Records of a JSONL file (one per non-blank line) or of a JSON array (`data[list_key]` if given)."""
    name = os.path.basename(path)
    if path.endswith(".jsonl"):
        records = []
        with open(path, encoding="utf-8") as lines:
            for line_number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    payload = json.loads(line)
                except json.JSONDecodeError as error:
                    payload = UnparsableRecord(str(error))
                records.append(SourceRecord(f"{name}: line {line_number}", payload))
        return records
    with open(path, encoding="utf-8") as source:
        data = json.load(source)
    if list_key is not None:
        data = data[list_key]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array of records (or a .jsonl file)")
    where = f"{name}: {list_key}" if list_key else name
    return [SourceRecord(f"{where}[{index}]", record) for index, record in enumerate(data)]


def split_placeholders(
    text: str, placeholder: str, visual_items: list[dict], next_visual: int
) -> tuple[list[dict], int]:
    """Text with placeholders -> content items, taking visual items in order; returns the next index."""
    items: list[dict] = []
    pieces = text.split(placeholder)
    for index, piece in enumerate(pieces):
        if index > 0:
            if next_visual >= len(visual_items):
                raise BadRecord("placeholder_mismatch", f"more {placeholder} placeholders than media files")
            items.append(visual_items[next_visual])
            next_visual += 1
        if piece:
            items.append({"type": "text", "text": piece})
    return items, next_visual


def conversation_messages(turns: object, placeholder: str, visual_items: list[dict]) -> list[dict]:
    """LLaVA turns [{"from": "human", "value": "<image>\\nQ"}, {"from": "gpt", "value": "A"}] -> messages.

    Each placeholder takes the next visual item, text kept verbatim around it. Without any
    placeholder the visual items go first in the first user turn (LLaVA's own convention).
    """
    if not isinstance(turns, list) or not turns:
        raise BadRecord("no_conversation", "conversations must be a non-empty list of turns")
    total_placeholders = sum(
        str(turn.get("value", turn.get("content", ""))).count(placeholder) for turn in turns
    )
    if total_placeholders not in (0, len(visual_items)):
        raise BadRecord(
            "placeholder_mismatch",
            f"{total_placeholders} {placeholder} placeholders for {len(visual_items)} files",
        )
    messages, next_visual = [], 0
    for turn in turns:
        role = ROLE_NAMES.get(str(turn.get("from", turn.get("role"))).lower())
        if role is None:
            raise BadRecord("unknown_role", f"turn from {turn.get('from', turn.get('role'))!r}")
        text = turn.get("value", turn.get("content"))
        if not isinstance(text, str):
            raise BadRecord("invalid_record", f"turn value must be a string, got {type(text).__name__}")
        content, next_visual = split_placeholders(text, placeholder, visual_items, next_visual)
        if total_placeholders == 0 and role == "user" and next_visual == 0:
            content, next_visual = list(visual_items) + content, len(visual_items)
        messages.append({"role": role, "content": content})
    if next_visual != len(visual_items):
        raise BadRecord(
            "placeholder_mismatch", f"{len(visual_items)} media files but no user turn to hold them"
        )
    return messages
