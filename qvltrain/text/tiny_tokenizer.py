"""Build the tiny Qwen2-style tokenizer bundled in `qvltrain/assets/tiny_tokenizer/`.

    python -m apps.build_tiny_tokenizer [--out DIR]

A byte-level BPE trained with the `tokenizers` library on `TINY_CORPUS`, with Qwen2's normalizer,
pre-tokenizer split regex and decoder, followed by every Qwen2-VL special token in Qwen2's order, so the
tiny model's embedding stays small (< 2048 rows) while ids, templates and rendering behave like the
real release. The build is deterministic: the same bytes every time (a test checks it against the
committed copy), so the committed files are always reproducible from this code.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

from qvltrain.text.chat_template import QWEN2_VL_CHAT_TEMPLATE
from qvltrain.text.tiny_corpus import TINY_CORPUS

DEFAULT_OUT_DIR = Path(__file__).resolve().parent.parent / "assets" / "tiny_tokenizer"

# Qwen2's pre-tokenizer split: digits are single pieces, letters group with one leading non-letter.
QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)

# Order matters: the release appends these after the BPE vocabulary in exactly this order.
QWEN2_VL_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

TOTAL_VOCAB_SIZE = 2048
BPE_VOCAB_SIZE = TOTAL_VOCAB_SIZE - len(QWEN2_VL_SPECIAL_TOKENS)
MODEL_MAX_LENGTH = 32768


def set_qwen2_pipeline(tokenizer: Tokenizer) -> Tokenizer:
    """Qwen2's normalizer (NFC), pre-tokenizer (split regex, then byte level) and byte-level decoder."""
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def add_qwen2_vl_special_tokens(tokenizer: Tokenizer) -> Tokenizer:
    """Append every Qwen2-VL special token after the BPE vocabulary, in the release's order."""
    tokenizer.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in QWEN2_VL_SPECIAL_TOKENS]
    )
    return tokenizer


def train_tiny_tokenizer() -> Tokenizer:
    """Train the byte-level BPE on the bundled corpus and append the special tokens."""
    tokenizer = Tokenizer(
        BPE(
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    set_qwen2_pipeline(tokenizer)
    trainer = BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        min_frequency=1,
        show_progress=False,
        # Every byte is in the base vocabulary, so any text (any language, emoji) still encodes.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tokenizer.train_from_iterator(TINY_CORPUS.splitlines(keepends=True), trainer=trainer)
    return add_qwen2_vl_special_tokens(tokenizer)


def tokenizer_config(tokenizer: Tokenizer) -> dict:
    """The tokenizer_config.json contents, in the layout of the Qwen2-VL release."""
    added_tokens_decoder = {
        str(tokenizer.token_to_id(token)): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token in QWEN2_VL_SPECIAL_TOKENS
    }
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": added_tokens_decoder,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>", *QWEN2_VL_SPECIAL_TOKENS[3:]],
        "bos_token": None,
        "chat_template": QWEN2_VL_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": MODEL_MAX_LENGTH,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def special_tokens_map() -> dict:
    return {
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>", *QWEN2_VL_SPECIAL_TOKENS[3:]],
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
    }


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(
        json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
    )


def build_tiny_tokenizer(out_dir: str | Path = DEFAULT_OUT_DIR) -> Path:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json into `out_dir`."""
    return write_tokenizer_dir(train_tiny_tokenizer(), out_dir)


def write_tokenizer_dir(tokenizer: Tokenizer, out_dir: str | Path) -> Path:
    """A transformers-loadable Qwen2 tokenizer folder for `tokenizer` (specials already added)."""
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    # Re-serialise with sorted keys so the bytes never depend on dict ordering inside `tokenizers`.
    tokenizer_json = json.loads(tokenizer.to_str())
    _write_json(out_path / "tokenizer.json", tokenizer_json)
    _write_json(out_path / "tokenizer_config.json", tokenizer_config(tokenizer))
    _write_json(out_path / "special_tokens_map.json", special_tokens_map())
    return out_path
