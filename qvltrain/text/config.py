"""RenderConfig: how a decoded sample's messages become token ids and labels."""

from __future__ import annotations

from dataclasses import dataclass

from qvltrain.text.chat_template import DEFAULT_SYSTEM_PROMPT
from qvltrain.text.grounding import BOX_FORMATTERS
from qvltrain.text.positions import POSITION_RULES

TEMPLATES = ("chatml", "plain")


@dataclass
class RenderConfig:
    """Text rendering for one dataset / stage (see docs/formats.md)."""

    template: str = "chatml"
    """"chatml" (Qwen2-VL chat template, loss on assistant turns) or "plain" (pre-training, loss on text)."""
    default_system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    """chatml: system turn injected when the first message is not a system message; None injects none."""
    add_vision_ids: bool = False
    """Prefix each visual block with "Picture N: " / "Video N: " (counted per sample, as the template does)."""
    train_first_text: bool = True
    """plain: train on the first text chunk too; False treats it as an untrained prompt."""
    trained_roles: tuple[str, ...] = ("assistant",)
    """chatml: roles whose content and closing `<|im_end|>\\n` are trained."""
    plain_end_of_text: bool = True
    """plain: append `<|endoftext|>` to close the document, trained when any of its text is (text/plain.py)."""
    max_length: int | None = None
    """Longest sample in tokens (usually the pack length); longer ones are cut at a turn boundary."""
    spatial_merge_size: int = 2
    """Patches merged per side into one LLM token: a visual block has t*h*w / merge**2 pad tokens."""
    box_format: str = "qwen2_vl"
    """Model family whose box coordinate convention is rendered (keys of grounding.BOX_FORMATTERS)."""
    position_rule: str = "paper"
    """Where text resumes after a visual block: "paper" (max position + 1) or "transformers" (docs/formats.md)."""
    tokens_per_second: int | None = None
    """Absolute-time video positions (Qwen2.5-VL): t-row steps of tokens_per_second x seconds per tube;
    None: one step per tube (Qwen2-VL). Set by the model family (text/positions.py)."""

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"RenderConfig.template must be one of {TEMPLATES}, got {self.template!r}")
        if self.box_format not in BOX_FORMATTERS:
            raise ValueError(
                f"RenderConfig.box_format must be one of {tuple(BOX_FORMATTERS)}, got {self.box_format!r}"
            )
        if self.position_rule not in POSITION_RULES:
            raise ValueError(
                f"RenderConfig.position_rule must be one of {POSITION_RULES}, got {self.position_rule!r}"
            )
        if self.tokens_per_second is not None and self.tokens_per_second <= 0:
            raise ValueError(
                f"RenderConfig.tokens_per_second must be None or > 0, got {self.tokens_per_second}"
            )
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"RenderConfig.max_length must be None or a positive int, got {self.max_length}")
        if self.spatial_merge_size < 1:
            raise ValueError(f"RenderConfig.spatial_merge_size must be >= 1, got {self.spatial_merge_size}")
        self.trained_roles = tuple(self.trained_roles)
        if not self.trained_roles:
            raise ValueError("RenderConfig.trained_roles must name at least one role, e.g. ('assistant',)")
        unknown_roles = set(self.trained_roles) - {"system", "user", "assistant"}
        if unknown_roles:
            raise ValueError(
                f"RenderConfig.trained_roles must be a subset of ('system', 'user', 'assistant'), "
                f"got {sorted(unknown_roles)}"
            )
