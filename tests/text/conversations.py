"""Seeded generators of shard-schema conversations for the text tests, and their oracle form.

`oracle_messages` turns our schema into what the Qwen2-VL chat template understands: ref and box items
become text holding the special-token strings, computed here independently of qvltrain.text.grounding.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

WORDS = (
    "a handwritten digit left right up down the red car moves to where is What color Describe image "
    "video frame Picture box number café naïve 東京 über 123 2026 x1 (12,34) it's they're don't"
).split()
PUNCTUATION = (".", ",", "?", "!", ":", ";", " -", "...", ")", "(")
KINDS = ("text", "single_image", "multi_image", "video", "mixed", "multi_turn", "grounding")


@dataclass
class Conversation:
    kind: str
    messages: list[dict]
    visual_kinds: list[str]  # "image" | "video" per visual item, in order
    image_sizes: list[tuple[int, int]]  # (width, height) per image item
    video_grids: list[tuple[int, int, int]]  # grid_thw per video item (images get theirs from the processor)


def random_text(rng: random.Random, min_words: int = 1, max_words: int = 9) -> str:
    """Text that starts with a word (never whitespace or a newline) and stresses BPE boundaries."""
    pieces = [rng.choice(WORDS)]
    for _ in range(rng.randint(min_words, max_words) - 1):
        separator = rng.choice((" ", " ", " ", "  ", "\n", "\n\n", rng.choice(PUNCTUATION) + " "))
        pieces.append(separator + rng.choice(WORDS))
    ending = rng.choice(("", ".", "?", "!", " :)", "\n", " 7", "🙂"))
    return "".join(pieces) + ending


def random_image_size(rng: random.Random) -> tuple[int, int]:
    return rng.randint(20, 260), rng.randint(20, 260)


def random_video_grid(rng: random.Random) -> tuple[int, int, int]:
    return rng.randint(1, 5), 2 * rng.randint(1, 5), 2 * rng.randint(1, 5)


class ConversationGenerator:
    """`clean_boundaries=False` also makes texts that start with whitespace or newlines and text items
    split mid-word: the tokenizer merges across those boundaries, which splicing must reproduce."""

    def __init__(self, seed: int, clean_boundaries: bool = False) -> None:
        self.rng = random.Random(seed)
        self.clean_boundaries = clean_boundaries

    def text_items(self, min_words: int = 1, max_words: int = 9) -> list[dict]:
        text = random_text(self.rng, min_words, max_words)
        if self.clean_boundaries:
            return [{"type": "text", "text": text}]
        if self.rng.random() < 0.3:
            text = self.rng.choice((" ", "\n", "\n\n", " \n", "  ")) + text
        if self.rng.random() < 0.4 and len(text) > 1:
            cut = self.rng.randrange(1, len(text))
            return [{"type": "text", "text": text[:cut]}, {"type": "text", "text": text[cut:]}]
        return [{"type": "text", "text": text}]

    def generate(self, kind: str) -> Conversation:
        rng = self.rng
        conversation = Conversation(kind, [], [], [], [])
        num_turns = rng.randint(2, 4) if kind in ("multi_turn", "mixed") else 1
        if rng.random() < 0.25:
            conversation.messages.append(
                {"role": "system", "content": [{"type": "text", "text": random_text(rng)}]}
            )
        for turn in range(num_turns):
            user_items = self._user_items(kind, turn, conversation)
            conversation.messages.append({"role": "user", "content": user_items})
            conversation.messages.append(
                {"role": "assistant", "content": self._assistant_items(kind, conversation)}
            )
        if rng.random() < 0.15 and kind == "text":
            conversation.messages[-1]["content"] = random_text(rng)  # content as a plain string
        return conversation

    def _visual(self, kind: str, conversation: Conversation) -> dict:
        conversation.visual_kinds.append(kind)
        if kind == "image":
            conversation.image_sizes.append(random_image_size(self.rng))
            return {"type": "image", "file": f"{len(conversation.visual_kinds) - 1}.jpg"}
        conversation.video_grids.append(random_video_grid(self.rng))
        return {"type": "video", "file": f"{len(conversation.visual_kinds) - 1}.mp4"}

    def _user_items(self, kind: str, turn: int, conversation: Conversation) -> list[dict]:
        rng = self.rng
        visual_choices = {
            "text": [],
            "single_image": ["image"] if turn == 0 else [],
            "multi_image": ["image"] * rng.randint(2, 3),
            "video": ["video"] if turn == 0 else [],
            "mixed": rng.sample(["image", "video", "image", "video"], rng.randint(0, 3)),
            "multi_turn": ["image"] if rng.random() < 0.5 else [],
            "grounding": ["image"] if turn == 0 else [],
        }[kind]
        items = [self._visual(visual_kind, conversation) for visual_kind in visual_choices]
        position = rng.randint(0, len(items))
        items[position:position] = self.text_items()
        if kind == "grounding":
            items += [{"type": "text", "text": " Where is "}, {"type": "ref", "text": random_text(rng, 1, 3)}]
        return items

    def _assistant_items(self, kind: str, conversation: Conversation) -> list[dict]:
        rng = self.rng
        if kind != "grounding" or not conversation.image_sizes:
            return self.text_items()
        items: list[dict] = []
        for _ in range(rng.randint(1, 2)):
            image_index = rng.randrange(len(conversation.image_sizes))
            width, height = conversation.image_sizes[image_index]
            x1, x2 = sorted(rng.sample(range(width + 1), 2))
            y1, y2 = sorted(rng.sample(range(height + 1), 2))
            items += [
                {"type": "ref", "text": random_text(rng, 1, 3)},
                {"type": "box", "bbox": [x1, y1, x2, y2], "image": image_index},
                {"type": "text", "text": rng.choice(("", " and ", ". ", "\n"))},
            ]
        return items


def reference_box_string(bbox: list[float], size: tuple[int, int]) -> str:
    """Independent Qwen2-VL box formula for in-image boxes: floor(v / size * 1000), capped at 999."""
    width, height = size
    scale = lambda value, extent: min(999, math.floor(value * 1000 / extent))  # noqa: E731
    x1, y1, x2, y2 = bbox
    return f"({scale(x1, width)},{scale(y1, height)}),({scale(x2, width)},{scale(y2, height)})"


def oracle_item(item: dict, image_sizes: list[tuple[int, int]]) -> dict:
    if item["type"] == "ref":
        return {"type": "text", "text": f"<|object_ref_start|>{item['text']}<|object_ref_end|>"}
    if item["type"] == "box":
        box = reference_box_string(item["bbox"], image_sizes[item["image"]])
        return {"type": "text", "text": f"<|box_start|>{box}<|box_end|>"}
    if item["type"] in ("image", "video"):
        return {"type": item["type"]}
    return dict(item)


def oracle_messages(conversation: Conversation) -> list[dict]:
    """Our schema -> the chat template's: ref/box items become text with special-token strings."""
    converted = []
    for message in conversation.messages:
        content = message["content"]
        if not isinstance(content, str):
            content = [oracle_item(item, conversation.image_sizes) for item in content]
        converted.append({"role": message["role"], "content": content})
    return converted


def oracle_plain_text(conversation: Conversation, end_of_text: bool = True) -> str:
    """The plain template as a string with one pad per visual block (the processor expands it)."""
    pieces = []
    for message in oracle_messages(conversation):
        content = message["content"]
        for item in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            if item["type"] == "image":
                pieces.append("<|vision_start|><|image_pad|><|vision_end|>")
            elif item["type"] == "video":
                pieces.append("<|vision_start|><|video_pad|><|vision_end|>")
            else:
                pieces.append(item["text"])
    return "".join(pieces) + ("<|endoftext|>" if end_of_text else "")
