"""The plain renderer for pre-training: every message's content in order, no ChatML.

Loss is on text only (text, ref phrases, box coordinates), never on visual blocks or special tokens.
With `train_first_text=False` the first text chunk (consecutive textual items of one message, up to
the next visual item) is an untrained prompt. Each message end is a turn boundary for truncation.
Recipes own the spacing between items: nothing is inserted between them.
"""

from __future__ import annotations

from qvltrain.text.content import TEXTUAL_TYPES, ContentRenderer, content_items


def render_plain(messages: list[dict], renderer: ContentRenderer) -> None:
    config, builder = renderer.config, renderer.builder
    # "before": no text seen yet; "inside": in the first chunk; "after": the first chunk has ended.
    first_chunk_state = "before"
    for message in messages:
        for item in content_items(message):
            is_textual = item.get("type") in TEXTUAL_TYPES
            if is_textual and first_chunk_state == "before":
                first_chunk_state = "inside"
            elif not is_textual and first_chunk_state == "inside":
                first_chunk_state = "after"
            text_trained = config.train_first_text or first_chunk_state != "inside"
            renderer.add_item(item, text_trained=text_trained, special_trained=False)
        if first_chunk_state == "inside":
            first_chunk_state = "after"
        builder.end_turn()
    if config.plain_end_of_text:
        # The document separator belongs to the last turn: a cut at that boundary drops it with the text.
        builder.add_special(renderer.info.special.endoftext, trained=False)
        builder.extend_last_turn()
