"""Preemption: SIGTERM / SIGUSR1 ask for a checkpoint and a clean exit at the next step boundary.

The handler only sets a flag (no I/O, no sleeps); the ranks agree on it inside the step's metrics
all-reduce, so they all save at the same step even when only one of them was signalled.
"""

from __future__ import annotations

import signal


class StopRequest:
    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous = {}

    def install(self) -> StopRequest:
        for signum in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signal_name = signal.Signals(signum).name

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
