"""The chatml renderer: Qwen2-VL's chat template, with labels from role spans.

Per turn: `<|im_start|>{role}\\n{content}<|im_end|>\\n`. In trained roles (assistant by default) the
content, `<|im_end|>` and the newline after it are trained; role headers, system and user turns,
visual blocks and "Picture N: " prefixes never are.
"""

from __future__ import annotations

from qvltrain.text.content import ContentRenderer, content_items
from qvltrain.text.errors import SkipSample

ROLES = ("system", "user", "assistant")


def render_chatml(messages: list[dict], renderer: ContentRenderer) -> None:
    config, special, builder = renderer.config, renderer.info.special, renderer.builder
    needs_default_system = config.default_system_prompt is not None and (
        not messages or messages[0].get("role") != "system"
    )
    if needs_default_system:
        builder.add_ids(renderer.info.system_turn_ids(config.default_system_prompt), trained=False)
        builder.end_turn()
    for message in messages:
        role = message.get("role")
        if role not in ROLES:
            raise SkipSample("unknown_role", f"message role {role!r}, expected one of {ROLES}")
        trained = role in config.trained_roles
        builder.add_special(special.im_start, trained=False)
        builder.add_text(f"{role}\n", trained=False)
        for item in content_items(message):
            renderer.add_item(item, text_trained=trained, special_trained=trained)
        builder.add_special(special.im_end, trained)
        builder.add_ids(renderer.info.newline_ids, trained)
        builder.end_turn()
