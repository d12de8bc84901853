"""The tokenizer built from the public Qwen ranks encodes exactly as tiktoken does on those ranks."""

from __future__ import annotations

import random
import unicodedata

import tiktoken

from qvltrain.text.tiny_tokenizer import QWEN2_SPLIT_REGEX, QWEN2_VL_SPECIAL_TOKENS
from qvltrain.text.tokenizer import load_tokenizer

from .qwen_vocab import QWEN2_NUM_RANKS, qwen_ranks_file, read_ranks

SAMPLES = [
    "Hello world",
    "A handwritten 7 in the top-left corner.",
    "   leading spaces and trailing   \n\n\tTabs\r\n",
    "价格是 1234.56 元，约合 $170。",
    "Ça coûte 12€ — naïve café, 日本語のテキスト, 한국어, русский текст.",
    "def f(x):\n    return x ** 2  # square\n",
    "emoji 🙂👍🏽 and symbols ∑∫√ <html><br/></html>",
    "(12,345),(678,999) I'm we'll they'd YOU'RE",
]


def random_text(rng: random.Random) -> str:
    pieces = ["the", " digit", "7", "  ", "\n", "数字", "é", "!", "?", "'s", " 42", "🙂", "\t", "x"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))


def test_built_tokenizer_equals_tiktoken_on_the_same_ranks(qwen2_vl_tokenizer_dir) -> None:
    ranks = read_ranks(qwen_ranks_file())
    specials = {token: QWEN2_NUM_RANKS + i for i, token in enumerate(QWEN2_VL_SPECIAL_TOKENS)}
    reference = tiktoken.Encoding(
        "qwen2", pat_str=QWEN2_SPLIT_REGEX, mergeable_ranks=ranks, special_tokens=specials
    )
    tokenizer = load_tokenizer(qwen2_vl_tokenizer_dir)
    rng = random.Random(0)
    texts = SAMPLES + [random_text(rng) for _ in range(300)]
    for text in texts:
        text = unicodedata.normalize("NFC", text)  # the Qwen2 tokenizer normalises first
        assert tokenizer(text)["input_ids"] == reference.encode(text), repr(text)
    chat = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Where?<|im_end|>\n"
    assert tokenizer(chat)["input_ids"] == reference.encode(chat, allowed_special="all")
    assert tokenizer("Hello world")["input_ids"] == [9707, 1879]  # as the Qwen2 release encodes it
