"""Tokenizer loading (local directories only) and the special-token ids read from a tokenizer.

Ids are never hard-coded: the tiny tokenizer and the Qwen2-VL release share token strings, not ids.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

TINY_TOKENIZER_DIR = Path(__file__).resolve().parent.parent / "assets" / "tiny_tokenizer"


def load_tokenizer(path: str | Path | None = None) -> PreTrainedTokenizerBase:
    """Load a Qwen2 tokenizer from a local directory; `None` loads the bundled tiny tokenizer.

    Never contacts a hub: a missing directory is a user error, not a download.
    """
    directory = TINY_TOKENIZER_DIR if path is None else Path(path).expanduser()
    if not directory.is_dir():
        raise ValueError(
            f"tokenizer path {str(directory)!r} is not a local directory; pass a directory holding "
            "tokenizer.json and tokenizer_config.json (e.g. a Qwen2-VL release download), or None for "
            "the bundled tiny tokenizer (hub ids are never fetched)"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    SpecialTokens.from_tokenizer(tokenizer)  # fail at load time, not mid-epoch, if a token is missing
    return tokenizer


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of every Qwen2-VL special token, as the given tokenizer assigns them."""

    endoftext: int
    """`<|endoftext|>`: the padding token of Qwen2-VL."""
    im_start: int
    """`<|im_start|>`: opens a ChatML turn."""
    im_end: int
    """`<|im_end|>`: closes a ChatML turn; the end-of-sequence token."""
    object_ref_start: int
    """`<|object_ref_start|>`: opens a grounded phrase."""
    object_ref_end: int
    """`<|object_ref_end|>`: closes a grounded phrase."""
    box_start: int
    """`<|box_start|>`: opens a box string `(x1,y1),(x2,y2)`."""
    box_end: int
    """`<|box_end|>`: closes a box string."""
    quad_start: int
    """`<|quad_start|>`: opens a quadrilateral (unused by our renderers, kept for completeness)."""
    quad_end: int
    """`<|quad_end|>`: closes a quadrilateral."""
    vision_start: int
    """`<|vision_start|>`: opens a visual block."""
    vision_end: int
    """`<|vision_end|>`: closes a visual block."""
    vision_pad: int
    """`<|vision_pad|>`: generic vision placeholder (unused by Qwen2-VL's processor)."""
    image_pad: int
    """`<|image_pad|>`: one merged image patch."""
    video_pad: int
    """`<|video_pad|>`: one merged video tube patch."""
    pad: int
    """The tokenizer's padding id (`<|endoftext|>` for Qwen2-VL)."""
    eos: int
    """The tokenizer's end-of-sequence id (`<|im_end|>` for Qwen2-VL)."""

    @staticmethod
    def token_string(field_name: str) -> str:
        return f"<|{field_name}|>"

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> SpecialTokens:
        vocab = tokenizer.get_vocab()
        ids: dict[str, int] = {}
        missing = []
        for field in fields(cls):
            if field.name in ("pad", "eos"):
                continue
            token = cls.token_string(field.name)
            if token in vocab:
                ids[field.name] = vocab[token]
            else:
                missing.append(token)
        if missing:
            raise ValueError(
                f"tokenizer {tokenizer.name_or_path!r} lacks the Qwen2-VL special tokens {missing}"
            )
        if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
            raise ValueError(f"tokenizer {tokenizer.name_or_path!r} must define pad_token and eos_token")
        return cls(**ids, pad=tokenizer.pad_token_id, eos=tokenizer.eos_token_id)

    def all_ids(self) -> frozenset[int]:
        return frozenset(getattr(self, field.name) for field in fields(self))


class TokenizerInfo:
    """What rendering needs from a tokenizer, computed once: the fast backend, special ids, fixed pieces.

    Text is encoded with the `tokenizers` backend directly (no per-call Python overhead of the HF
    wrapper); the parity tests check this equals what `Qwen2VLProcessor` produces.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no fast (tokenizers) backend")
        self.backend = backend
        self.special = SpecialTokens.from_tokenizer(tokenizer)
        self.newline_ids: tuple[int, ...] = tuple(self.encode_ids("\n"))
        self._system_turn_cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> TokenizerInfo:
        return cls(tokenizer)

    def encode(self, text: str):
        """A `tokenizers.Encoding` of `text` (ids and character offsets), no special tokens added."""
        return self.backend.encode(text, add_special_tokens=False)

    def encode_ids(self, text: str) -> list[int]:
        return self.encode(text).ids

    def system_turn_ids(self, system_prompt: str) -> tuple[int, ...]:
        """`<|im_start|>system\\n{prompt}<|im_end|>\\n` as ids; exact because specials bound both ends."""
        cached = self._system_turn_cache.get(system_prompt)
        if cached is None:
            cached = (
                self.special.im_start,
                *self.encode_ids(f"system\n{system_prompt}"),
                self.special.im_end,
                *self.newline_ids,
            )
            self._system_turn_cache[system_prompt] = cached
        return cached
