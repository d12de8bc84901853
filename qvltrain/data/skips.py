"""The bad-data policy (invariant 7): every skipped sample is counted by reason with its key and shard.

`max_consecutive` failures in a row stop the run with an error naming the last ones: a broken source
(wrong budget, unreadable bucket, a codec missing) must not silently train on nothing. Runs are
counted per stage, because a sample passes two: "read" (tar, KEY.json, metadata: in arrival order) and
"decode" (pixels and rendering: in pack order, up to a window later); a success resets its stage only. No handler
sleeps or retries, so a replay meets the same skips at the same samples. The log is part of the
pipeline's state, so counts survive resume.
"""

from __future__ import annotations

import logging
from collections import Counter, deque

LOGGER = logging.getLogger("qvltrain.data")
LOGGED_PER_REASON = 5
"""Skips logged one by one per reason and reader; later ones are only counted."""
RECENT = 20
"""Most recent skips kept (reason, key, shard) for reports."""


class TooManyFailures(RuntimeError):
    """K consecutive samples failed: the data, not a sample, is broken."""


class SkipLog:
    def __init__(self, max_consecutive: int):
        self.max_consecutive = max_consecutive
        self.counts: Counter[str] = Counter()
        self.recent: deque[tuple[str, str, str]] = deque(maxlen=RECENT)
        self.consecutive: dict[str, int] = {"read": 0, "decode": 0}

    def skip(self, reason: str, key: str, shard: str, detail: str = "", stage: str = "read") -> None:
        self.counts[reason] += 1
        self.recent.append((reason, key, shard))
        self.consecutive[stage] += 1
        if self.counts[reason] <= LOGGED_PER_REASON:
            LOGGER.warning("%s", detail[:300] or f"skipped sample {key!r} of {shard}: {reason}")
        if self.consecutive[stage] >= self.max_consecutive:
            last = "; ".join(f"{r} {k!r} in {s}" for r, k, s in list(self.recent)[-3:])
            raise TooManyFailures(
                f"{self.consecutive[stage]} consecutive bad samples at the {stage} stage (data.max_consecutive_failures="
                f"{self.max_consecutive}); counts {dict(self.counts)}; last: {last}. Check the shards, "
                "budgets and decoders of this dataset"
            )

    def success(self, stage: str) -> None:
        self.consecutive[stage] = 0

    def state_dict(self) -> dict:
        return {
            "counts": dict(self.counts),
            "recent": list(self.recent),
            "consecutive": dict(self.consecutive),
        }

    def load_state_dict(self, state: dict) -> None:
        self.counts = Counter(state["counts"])
        self.recent = deque((tuple(item) for item in state["recent"]), maxlen=RECENT)
        self.consecutive = dict(state["consecutive"])
