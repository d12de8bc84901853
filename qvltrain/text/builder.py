"""TokenSequenceBuilder: splices text pieces, special ids and visual pads into ids + a trained mask.

Why this exists: the processor tokenizes one long string, but Qwen2's tokenizer cuts at every special
token before BPE, so tokenizing each run of text between special tokens and splicing the special ids
in between gives exactly the same ids, without Jinja or the per-sample string work. Text pieces that
touch (a role header and its content, two text items) are encoded TOGETHER, because BPE merges and
the pre-tokenizer regex can cross their boundary ("?" + "\\n" is one piece). A token belongs to the
piece holding its first character; that piece decides whether it is trained.
"""

from __future__ import annotations

from bisect import bisect_right
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
        """Mark the current length as a turn boundary (a legal truncation point)."""
        self._turn_ends.append(len(self))

    def extend_last_turn(self) -> None:
        """Move the last turn boundary to the current length (trailing tokens belong to that turn)."""
        if self._turn_ends:
            self._turn_ends[-1] = len(self)
        else:
            self.end_turn()

    def finish(self) -> BuiltSequence:
        self._flush_text()
        return BuiltSequence(self._ids, self._trained, self._mm_types, self._turn_ends, self._visual_spans)

    def _flush_text(self) -> None:
        if not self._pending_texts:
            return
        texts, flags = self._pending_texts, self._pending_trained
        self._pending_texts, self._pending_trained = [], []
        encoding = self._info.encode("".join(texts))
        ids = encoding.ids
        if all(flag == flags[0] for flag in flags):
            trained = [flags[0]] * len(ids)
        else:
            piece_starts = []
            cursor = 0
            for text in texts:
                piece_starts.append(cursor)
                cursor += len(text)
            trained = [flags[bisect_right(piece_starts, start) - 1] for start, _ in encoding.offsets]
        self._ids.extend(ids)
        self._trained.extend(trained)
        self._mm_types.extend([MM_TEXT] * len(ids))
