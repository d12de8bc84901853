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

from qvltrain.text.tokenizer import TokenizerInfo

MM_TEXT, MM_IMAGE, MM_VIDEO = 0, 1, 2


@dataclass
class BuiltSequence:
    """Plain lists out of the builder; render.py turns them into tensors."""

    ids: list[int]
    trained: list[bool]
    mm_types: list[int]
    turn_ends: list[int]
    visual_spans: list[tuple[int, int]]


class TokenSequenceBuilder:
    def __init__(self, info: TokenizerInfo) -> None:
        self._info = info
        self._ids: list[int] = []
        self._trained: list[bool] = []
        self._mm_types: list[int] = []
        self._turn_ends: list[int] = []
        self._visual_spans: list[tuple[int, int]] = []
        self._pending_texts: list[str] = []
        self._pending_trained: list[bool] = []
        self._pending_turn_chars: list[int] = []  # turn ends inside a pending text run, as char offsets

    def __len__(self) -> int:
        self._flush_text()
        return len(self._ids)

    def add_text(self, text: str, trained: bool) -> None:
        if text:
            self._pending_texts.append(text)
            self._pending_trained.append(trained)

    def add_ids(self, ids: list[int] | tuple[int, ...], trained: bool, mm_type: int = MM_TEXT) -> None:
        """Ids that stand alone for the tokenizer: special tokens, or text bounded by specials."""
        self._flush_text()
        self._ids.extend(ids)
        self._trained.extend([trained] * len(ids))
        self._mm_types.extend([mm_type] * len(ids))

    def add_special(self, token_id: int, trained: bool) -> None:
        self.add_ids((token_id,), trained)

    def add_visual_block(self, pad_id: int, num_pad_tokens: int, mm_type: int) -> None:
        """`<|vision_start|>` + pads + `<|vision_end|>`, never trained (pads are features, not words)."""
        special = self._info.special
        start = len(self)
        self.add_special(special.vision_start, trained=False)
        self.add_ids([pad_id] * num_pad_tokens, trained=False, mm_type=mm_type)
        self.add_special(special.vision_end, trained=False)
        self._visual_spans.append((start, len(self._ids)))

    def end_turn(self) -> None:
        """Mark the current length as a turn boundary (a legal truncation point).

        Inside a text run (plain: one message's text runs into the next) the run is not cut: it is
        tokenized whole and the boundary becomes the first token starting at or after it.
        """
        if self._pending_texts:
            self._pending_turn_chars.append(sum(len(text) for text in self._pending_texts))
        else:
            self._turn_ends.append(len(self._ids))

    def extend_last_turn(self) -> None:
        """Move the last turn boundary to the current length (trailing tokens belong to that turn)."""
        self._flush_text()
        if self._turn_ends:
            self._turn_ends[-1] = len(self._ids)
        else:
            self.end_turn()

    def finish(self) -> BuiltSequence:
        self._flush_text()
        return BuiltSequence(self._ids, self._trained, self._mm_types, self._turn_ends, self._visual_spans)

    def _flush_text(self) -> None:
        if not self._pending_texts:
            return
        texts, flags, turn_chars = self._pending_texts, self._pending_trained, self._pending_turn_chars
        self._pending_texts, self._pending_trained, self._pending_turn_chars = [], [], []
        encoding = self._info.encode("".join(texts))
        ids = encoding.ids
        if turn_chars:
            token_starts = [start for start, _ in encoding.offsets]
            self._turn_ends.extend(len(self._ids) + bisect_left(token_starts, char) for char in turn_chars)
        if all(flag == flags[0] for flag in flags):
            trained = [flags[0]] * len(ids)
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
        self._ids.extend(ids)
        self._trained.extend(trained)
        self._mm_types.extend([MM_TEXT] * len(ids))
