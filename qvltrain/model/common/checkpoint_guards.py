"""What a Qwen-VL checkpoint must agree on with a run: special-token ids, vocabulary, position rule.

Shared by the families whose models take the Qwen-VL special tokens (`qvltrain.text.tokenizer`).
"""

from __future__ import annotations

from qvltrain.model.family import POSITION_RULE_KEY
from qvltrain.text.tokenizer import SpecialTokens


def special_token_ids(tokenizer) -> dict[str, int]:
    """The ids the model config needs, read from the tokenizer (never hard-coded)."""
    tokens = SpecialTokens.from_tokenizer(tokenizer)
    return {
        "pad": tokens.pad,
        "eos": tokens.eos,
        "image_pad": tokens.image_pad,
        "video_pad": tokens.video_pad,
        "vision_start": tokens.vision_start,
        "vision_end": tokens.vision_end,
    }


def recorded_position_rule(hf_config, release_rule: str) -> str:
    """The position rule a checkpoint was trained with (`release_rule` when it records none: the
    family's released weights)."""
    return getattr(hf_config, POSITION_RULE_KEY, None) or release_rule


def check_checkpoint_matches(hf_config, tokenizer, config, release_rule: str) -> None:
    """Refuse a checkpoint whose special-token ids, vocabulary or position rule disagree with this run
    (`config` is the run's ModelConfig).

    A mismatch would otherwise train silently on wrong ids (e.g. the bundled 1,073-token tokenizer
    with a released checkpoint's 151,936-row embedding: image pads would be ordinary words).
    """
    ids = special_token_ids(tokenizer)
    where = f"model.init_from={config.init_from!r}"
    tokenizer_name = config.tokenizer or "the bundled tiny tokenizer (model.tokenizer=null)"
    problems = [
        f"{name} is {getattr(hf_config, name, None)} in the checkpoint but {ids[key]} in the tokenizer"
        for name, key in (
            ("image_token_id", "image_pad"),
            ("video_token_id", "video_pad"),
            ("vision_start_token_id", "vision_start"),
            ("vision_end_token_id", "vision_end"),
        )
        if getattr(hf_config, name, ids[key]) != ids[key]
    ]
    vocab_size = hf_config.text_config.vocab_size
    if vocab_size < len(tokenizer):
        problems.append(
            f"the checkpoint has {vocab_size} embedding rows but the tokenizer {len(tokenizer)} tokens"
        )
    if problems:
        raise ValueError(
            f"{where} does not belong to model.tokenizer ({tokenizer_name}): " + "; ".join(problems) + ". "
            "Point model.tokenizer at the tokenizer the checkpoint was trained with (for a release, its own "
            "folder holds tokenizer.json)."
        )
    trained_rule = recorded_position_rule(hf_config, release_rule)
    if trained_rule != config.position_rule:
        raise ValueError(
            f"{where} was trained with model.position_rule={trained_rule!r} (config.json "
            f"{POSITION_RULE_KEY}, absent means the release's {release_rule!r}), but this run sets "
            f"model.position_rule={config.position_rule!r}; set model.position_rule={trained_rule} to "
            "continue with the positions the weights know"
        )
