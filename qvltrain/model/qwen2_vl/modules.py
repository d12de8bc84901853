"""Which modules of a `Qwen2VLForConditionalGeneration` are what: the stages' groups, the parts."""

from __future__ import annotations

from torch import nn


def module_groups(model: nn.Module) -> dict[str, list[nn.Module]]:
    """The stages' groups by module, first match wins: the merger (the vision-language projector),
    then the rest of the tower (patch embedding, blocks), then the LLM (embeddings, decoder, head)."""
    visual = model.model.visual
    return {
        "merger": [visual.merger],
        "vision_tower": [visual],
        "llm": [model.model.language_model, model.lm_head],
    }


def parts(model: nn.Module) -> dict[str, nn.Module]:
    """The tower (returns `.pooler_output`) and the decoder (returns `.last_hidden_state`)."""
    return {"vision_tower": model.model.visual, "language_model": model.model.language_model}
