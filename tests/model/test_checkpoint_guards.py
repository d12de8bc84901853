"""A checkpoint is refused at build time when its ids, vocabulary or position rule disagree with the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qvltrain.model.common.checkpoint_guards import special_token_ids
from qvltrain.model.config import ModelConfig
from qvltrain.model.family import POSITION_RULE_KEY
from qvltrain.model.qwen2_vl.build import build_hf_config, build_model
from qvltrain.text.tokenizer import load_tokenizer

# The Qwen2-VL releases' special-token ids (their tokenizer's added tokens from 151643 on).
RELEASE_IDS = dict(
    pad=151643, eos=151645, image_pad=151655, video_pad=151656, vision_start=151652, vision_end=151653
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(None)


def save_config(folder: Path, hf_config) -> str:
    """Only config.json: the guard runs before any weight is read, so none are written."""
    folder.mkdir()
    hf_config.save_pretrained(folder)
    return str(folder)


def test_tiny_tokenizer_with_a_release_checkpoint_names_every_mismatch(tmp_path: Path, tokenizer) -> None:
    release = build_hf_config(ModelConfig().architecture, RELEASE_IDS, tokenizer_size=151657)
    folder = save_config(tmp_path / "release", release)
    ours = special_token_ids(tokenizer)
    with pytest.raises(ValueError) as error:
        build_model(ModelConfig(init_from=folder), tokenizer, zero3=False)
    message = str(error.value)
    assert f"model.init_from={folder!r}" in message
    assert f"image_token_id is 151655 in the checkpoint but {ours['image_pad']} in the tokenizer" in message
    assert f"video_token_id is 151656 in the checkpoint but {ours['video_pad']}" in message
    assert f"vision_start_token_id is 151652 in the checkpoint but {ours['vision_start']}" in message
    assert "Point model.tokenizer at the tokenizer the checkpoint was trained with" in message


def test_checkpoint_with_fewer_embedding_rows_than_tokens(tmp_path: Path, tokenizer) -> None:
    small = build_hf_config(
        ModelConfig(arch={"llm": {"vocab_size": 500}}).architecture,
        special_token_ids(tokenizer),
        len(tokenizer),
    )
    folder = save_config(tmp_path / "small", small)
    with pytest.raises(ValueError, match=f"500 embedding rows but the tokenizer {len(tokenizer)} tokens"):
        build_model(ModelConfig(init_from=folder), tokenizer, zero3=False)


def test_position_rule_is_recorded_and_must_match_on_init(tmp_path: Path, tokenizer) -> None:
    model = build_model(ModelConfig(position_rule="transformers"), tokenizer, zero3=False)
    model.save_pretrained(tmp_path / "stage1")
    saved = json.loads((tmp_path / "stage1" / "config.json").read_text())
    assert saved[POSITION_RULE_KEY] == "transformers"

    with pytest.raises(
        ValueError, match="trained with model.position_rule='transformers'.*sets model.position_rule='paper'"
    ):
        build_model(ModelConfig(init_from=str(tmp_path / "stage1")), tokenizer, zero3=False)
    again = build_model(
        ModelConfig(init_from=str(tmp_path / "stage1"), position_rule="transformers"), tokenizer, zero3=False
    )
    assert getattr(again.config, POSITION_RULE_KEY) == "transformers"


def test_a_checkpoint_that_records_no_rule_is_the_papers(tmp_path: Path, tokenizer) -> None:
    model = build_model(ModelConfig(), tokenizer, zero3=False)
    delattr(model.config, POSITION_RULE_KEY)
    model.save_pretrained(tmp_path / "plain")
    assert POSITION_RULE_KEY not in json.loads((tmp_path / "plain" / "config.json").read_text())
    with pytest.raises(ValueError, match="absent means the release's 'paper'"):
        build_model(
            ModelConfig(init_from=str(tmp_path / "plain"), position_rule="transformers"),
            tokenizer,
            zero3=False,
        )
    loaded = build_model(ModelConfig(init_from=str(tmp_path / "plain")), tokenizer, zero3=False)
    assert getattr(loaded.config, POSITION_RULE_KEY) == "paper"


def test_unknown_position_rule_in_the_config_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"model.position_rule='vllm': expected one of paper, transformers"):
        ModelConfig(position_rule="vllm")
