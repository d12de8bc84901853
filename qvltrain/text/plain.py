"""The plain renderer for pre-training: every message's content in order, no ChatML.

Loss is on the words of the document: text, ref phrases and box coordinates, and the grounding
delimiters around them (`<|object_ref_start|>`/`<|object_ref_end|>`, `<|box_start|>`/`<|box_end|>`)
exactly when the text they enclose is trained, so a pre-trained model already learns to emit boxes.
Visual blocks (`<|vision_start|>`, pads, `<|vision_end|>`) are never trained: they are input.
With `train_first_text=False` the first text chunk (consecutive textual items of one message, up to
the next visual item) is an untrained prompt. Each message end is a turn boundary for truncation.
Recipes own the spacing between items: nothing is inserted between them.

The closing `<|endoftext|>` (`plain_end_of_text`) is trained when any text of the document is: the
model learns where a document (a caption, an OCR page) ends, as in the Qwen2 pre-training corpora
where every document ends in a trained end-of-text; without it a pre-trained model never learns to
stop. A document with no trained text (only a prompt) keeps it untrained, so it adds no loss alone.
"""

from __future__ import annotations

from qvltrain.text.content import TEXTUAL_TYPES, ContentRenderer, content_items


def render_plain(messages: list[dict], renderer: ContentRenderer) -> None:
    config, builder = renderer.config, renderer.builder
    # "before": no text seen yet; "inside": in the first chunk; "after": the first chunk has ended.
    first_chunk_state = "before"
    any_text_trained = False
    for message in messages:
        for item in content_items(message):
            is_textual = item.get("type") in TEXTUAL_TYPES
            if is_textual and first_chunk_state == "before":
                first_chunk_state = "inside"
            elif not is_textual and first_chunk_state == "inside":
                first_chunk_state = "after"
            text_trained = config.train_first_text or first_chunk_state != "inside"
            renderer.add_item(item, text_trained=text_trained, special_trained=text_trained)
            any_text_trained |= is_textual and text_trained
        if first_chunk_state == "inside":
            first_chunk_state = "after"
        builder.end_turn()
    if config.plain_end_of_text:
        # The document separator belongs to the last turn: a cut at that boundary drops it with the text.
        builder.add_special(renderer.info.special.endoftext, trained=any_text_trained)
        builder.extend_last_turn()
