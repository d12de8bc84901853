"""The bundled tiny tokenizer: loads as a real Qwen2 tokenizer, keeps special tokens whole, rebuilds exactly."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from qvltrain.text.tiny_tokenizer import QWEN2_VL_SPECIAL_TOKENS, TOTAL_VOCAB_SIZE, build_tiny_tokenizer
from qvltrain.text.tokenizer import TINY_TOKENIZER_DIR, SpecialTokens, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(None)


def test_loads_as_qwen2_tokenizer_with_small_vocab(tokenizer):
    assert type(tokenizer).__name__ in ("Qwen2Tokenizer", "Qwen2TokenizerFast")
    assert len(tokenizer) <= TOTAL_VOCAB_SIZE
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"


def test_special_tokens_follow_bpe_vocab_in_qwen2_order(tokenizer):
    ids = tokenizer.convert_tokens_to_ids(list(QWEN2_VL_SPECIAL_TOKENS))
    first = ids[0]
    assert ids == list(range(first, first + len(QWEN2_VL_SPECIAL_TOKENS)))
    assert first + len(QWEN2_VL_SPECIAL_TOKENS) == len(tokenizer)


@pytest.mark.parametrize("token", QWEN2_VL_SPECIAL_TOKENS)
def test_every_special_token_round_trips(tokenizer, token):
    text = f"a handwritten{token}digit 7"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_tokens_to_ids(token) in ids
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a handwrittendigit 7"


def test_digits_are_single_tokens(tokenizer):
    ids = tokenizer("(123,405),(999,0)", add_special_tokens=False)["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert [piece for piece in pieces if piece.isdigit()] == list("123405999" + "0")


def test_special_tokens_dataclass_reads_ids_from_tokenizer(tokenizer):
    special = SpecialTokens.from_tokenizer(tokenizer)
    assert special.im_end == tokenizer.convert_tokens_to_ids("<|im_end|>") == special.eos
    assert special.endoftext == special.pad == tokenizer.pad_token_id
    assert special.image_pad == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert len(special.all_ids()) == len(QWEN2_VL_SPECIAL_TOKENS)


def test_chat_template_renders_qwen2_vl_chatml(tokenizer):
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What digit is this?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "7"}]},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What digit is this?<|im_end|>\n"
        "<|im_start|>assistant\n7<|im_end|>\n"
    )
    with_ids = tokenizer.apply_chat_template(messages, tokenize=False, add_vision_id=True)
    assert "Picture 1: <|vision_start|>" in with_ids


def test_build_is_deterministic_and_matches_committed(tmp_path: Path):
    first = build_tiny_tokenizer(tmp_path / "a")
    second = build_tiny_tokenizer(tmp_path / "b")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        built = (first / name).read_bytes()
        assert built == (second / name).read_bytes(), name
        assert built == (TINY_TOKENIZER_DIR / name).read_bytes(), f"committed {name} is stale: rebuild it"
    rebuilt = AutoTokenizer.from_pretrained(str(first), local_files_only=True)
    assert rebuilt.get_vocab() == load_tokenizer(None).get_vocab()


def test_missing_directory_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="not a local directory"):
        load_tokenizer(tmp_path / "nope")
    with pytest.raises(ValueError, match="never fetched"):
        load_tokenizer("Qwen/Qwen2-VL-2B-Instruct")
