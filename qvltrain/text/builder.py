"""TokenSequenceBuilder: splices text pieces, special ids and visual pads into ids + a trained mask.

Why this exists: the processor tokenizes one long string, but Qwen2's tokenizer cuts at every special
token before BPE, so tokenizing each run of text between special tokens and splicing the special ids
in between gives exactly the same ids, without Jinja or the per-sample string work. Text pieces that
touch (a role header and its content, two text items) are encoded TOGETHER, because BPE merges and
the pre-tokenizer regex can cross their boundary ("?" + "\\n" is one piece). A token that overlaps
a trained piece is trained: a prompt "Q? " followed by the answer "A" ends in the token " A", which the
model must learn to predict.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import numpy as np

from qvltrain.text.tokenizer import TokenizerInfo

MM_TEXT, MM_IMAGE, MM_VIDEO = 0, 1, 2


@dataclass
class BuiltSequence:
    """The builder's output as arrays (render.py wraps them as tensors without copying)."""

    ids: np.ndarray  # [L] int64
    trained: np.ndarray  # [L] bool
    mm_types: np.ndarray  # [L] int64
    turn_ends: list[int]
    visual_spans: list[tuple[int, int]]


class TokenSequenceBuilder:
    """Collects segments (a run of ids, its trained flags, its modality type) and joins them once.

    A visual block's thousands of pads are one segment of a repeated id, never a Python list.
    """

    def __init__(self, info: TokenizerInfo) -> None:
        self._info = info
        self._ids: list[np.ndarray] = []
        self._trained: list[np.ndarray] = []
        self._mm_types: list[int] = []  # one per segment
        self._length = 0
        self._turn_ends: list[int] = []
        self._visual_spans: list[tuple[int, int]] = []
        self._pending_texts: list[str] = []
        self._pending_trained: list[bool] = []
        self._pending_turn_chars: list[int] = []  # turn ends inside a pending text run, as char offsets

    def __len__(self) -> int:
        self._flush_text()
        return self._length

    def _append(self, ids: np.ndarray, trained: np.ndarray, mm_type: int) -> None:
        self._ids.append(ids)
        self._trained.append(trained)
        self._mm_types.append(mm_type)
        self._length += len(ids)

    def add_text(self, text: str, trained: bool) -> None:
        if text:
            self._pending_texts.append(text)
            self._pending_trained.append(trained)

    def add_ids(self, ids: list[int] | tuple[int, ...], trained: bool, mm_type: int = MM_TEXT) -> None:
        """Ids that stand alone for the tokenizer: special tokens, or text bounded by specials."""
        self._flush_text()
        self._append(np.asarray(ids, dtype=np.int64), np.full(len(ids), trained), mm_type)

    def add_special(self, token_id: int, trained: bool) -> None:
        self.add_ids((token_id,), trained)

    def add_visual_block(self, pad_id: int, num_pad_tokens: int, mm_type: int) -> None:
        """`<|vision_start|>` + pads + `<|vision_end|>`, never trained (pads are features, not words)."""
        special = self._info.special
        start = len(self)
        self.add_special(special.vision_start, trained=False)
        self._append(np.full(num_pad_tokens, pad_id, dtype=np.int64), np.zeros(num_pad_tokens, bool), mm_type)
        self.add_special(special.vision_end, trained=False)
        self._visual_spans.append((start, self._length))

    def end_turn(self) -> None:
        """Mark the current length as a turn boundary (a legal truncation point).

        Inside a text run (plain: one message's text runs into the next) the run is not cut: it is
        tokenized whole and the boundary becomes the first token starting at or after it.
        """
        if self._pending_texts:
            self._pending_turn_chars.append(sum(len(text) for text in self._pending_texts))
        else:
            self._turn_ends.append(self._length)

    def extend_last_turn(self) -> None:
        """Move the last turn boundary to the current length (trailing tokens belong to that turn)."""
        self._flush_text()
        if self._turn_ends:
            self._turn_ends[-1] = self._length
        else:
            self.end_turn()

    def finish(self) -> BuiltSequence:
        self._flush_text()
        lengths = [len(ids) for ids in self._ids]
        return BuiltSequence(
            ids=np.concatenate(self._ids) if self._ids else np.zeros(0, np.int64),
            trained=np.concatenate(self._trained) if self._trained else np.zeros(0, bool),
            mm_types=np.repeat(np.asarray(self._mm_types, dtype=np.int64), lengths),
            turn_ends=self._turn_ends,
            visual_spans=self._visual_spans,
        )

    def _flush_text(self) -> None:
        if not self._pending_texts:
            return
        texts, flags, turn_chars = self._pending_texts, self._pending_trained, self._pending_turn_chars
        self._pending_texts, self._pending_trained, self._pending_turn_chars = [], [], []
        encoding = self._info.encode("".join(texts))
        ids = encoding.ids
        if turn_chars:
            token_starts = [start for start, _ in encoding.offsets]
            self._turn_ends.extend(self._length + bisect_left(token_starts, char) for char in turn_chars)
        if all(flag == flags[0] for flag in flags):
            trained = np.full(len(ids), flags[0])
        else:
            piece_starts = []
            cursor = 0
            for text in texts:
                piece_starts.append(cursor)
                cursor += len(text)
            trained = []
            for start, end in encoding.offsets:
                first_piece = bisect_right(piece_starts, start) - 1
                last_piece = bisect_right(piece_starts, max(end, start + 1) - 1) - 1
                trained.append(any(flags[first_piece : last_piece + 1]))
        self._append(np.asarray(ids, dtype=np.int64), np.asarray(trained, dtype=bool), MM_TEXT)
