"""The bad-data policy (invariant 7): every skipped sample is counted by reason with its key and shard.

`max_consecutive` failures in a row stop the run with an error naming the last ones: a broken source
(wrong budget, unreadable bucket, a codec missing) must not silently train on nothing. Runs are
counted per stage, because a sample passes two: "read" (tar, KEY.json, metadata: in arrival order) and
"decode" (pixels and rendering: in pack order, up to a window later); a success resets its stage only. No handler
sleeps or retries, so a replay meets the same skips at the same samples. The log is part of the
pipeline's state, so counts survive resume.

Beside that stop, a budget as a fraction: each dataset keeps the outcomes of its last `skip_window`
samples on this reader (skipped, with the reason, or kept in a pack; a sample counts once, where it
ends), and more than `max_skip_fraction` of them skipped stops the run with an error naming the
dataset, the fraction, the window and the window's top reasons. A source where, say, 60% of the
videos fail to decode never fails 100 in a row, and would otherwise train on a quietly biased
remainder. The windows are part of the state too, so a resumed run stops where the original would.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from itertools import groupby

LOGGER = logging.getLogger("qvltrain.data")
LOGGED_PER_REASON = 5
"""Skips logged one by one per reason and reader; later ones are only counted."""
RECENT = 20
"""Most recent skips kept (reason, key, shard) for reports."""


class TooManyFailures(RuntimeError):
    """K consecutive samples failed, or more than the budget's fraction of a dataset's recent ones:
    the data, not a sample, is broken."""


class SkipLog:
    def __init__(self, max_consecutive: int, max_skip_fraction: float = 1.0, skip_window: int = 1000):
        self.max_consecutive = max_consecutive
        self.max_skip_fraction, self.skip_window = max_skip_fraction, skip_window
        self.counts: Counter[str] = Counter()
        self.recent: deque[tuple[str, str, str]] = deque(maxlen=RECENT)
        self.consecutive: dict[str, int] = {"read": 0, "decode": 0}
        self.windows: dict[str, deque[str]] = {}
        """Per dataset, the last `skip_window` outcomes: the skip reason, or "" for a kept sample."""
        self.window_skips: Counter[str] = Counter()

    def skip(
        self,
        reason: str,
        key: str,
        shard: str,
        detail: str = "",
        stage: str = "read",
        dataset: str | None = None,
    ) -> None:
        """Count a skipped sample; `dataset` (its name) puts it in that dataset's budget window."""
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

        if dataset is not None:
            self._outcome(dataset, reason)

    def success(self, stage: str) -> None:
        self.consecutive[stage] = 0

    def kept(self, dataset: str) -> None:
        """A sample of `dataset` went into a pack (its outcome in the budget window)."""
        self._outcome(dataset, "")

    def _outcome(self, dataset: str, reason: str) -> None:
        window = self.windows.setdefault(dataset, deque(maxlen=self.skip_window))
        if len(window) == self.skip_window and window[0]:
            self.window_skips[dataset] -= 1  # the oldest outcome leaves the window
        window.append(reason)
        self.window_skips[dataset] += bool(reason)
        skipped = self.window_skips[dataset]
        if len(window) == self.skip_window and skipped > self.max_skip_fraction * self.skip_window:
            top = ", ".join(f"{r} {n}" for r, n in Counter(r for r in window if r).most_common(3))
            last = "; ".join(f"{r} {k!r} in {s}" for r, k, s in list(self.recent)[-3:])
            raise TooManyFailures(
                f"dataset {dataset!r}: {skipped} of its last {self.skip_window} samples on this reader were skipped "
                f"({skipped / self.skip_window:.1%} > data.max_skip_fraction={self.max_skip_fraction:g}, window "
                f"data.skip_window={self.skip_window}); top reasons in the window: {top}; last: {last}. Check this "
                "dataset's shards, budgets and decoders, or raise data.max_skip_fraction"
            )

    def state_dict(self) -> dict:
        return {
            "counts": dict(self.counts),
            "recent": list(self.recent),
            "consecutive": dict(self.consecutive),
            # run-length encoded: a healthy window is one run of kept samples
            "windows": {
                name: [[reason, len(list(run))] for reason, run in groupby(window)]
                for name, window in self.windows.items()
            },
        }

    def load_state_dict(self, state: dict) -> None:
        self.counts = Counter(state["counts"])
        self.recent = deque((tuple(item) for item in state["recent"]), maxlen=RECENT)
        self.consecutive = dict(state["consecutive"])
        self.windows, self.window_skips = {}, Counter()
        for name, runs in state.get("windows", {}).items():
            window = deque(
                (reason for reason, length in runs for _ in range(length)), maxlen=self.skip_window
            )
            self.windows[name] = window
            self.window_skips[name] = sum(1 for reason in window if reason)
