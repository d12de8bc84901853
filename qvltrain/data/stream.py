"""One dataset's endless sample stream for one reader: epochs of shards, a seeded shuffle buffer.

State (exact, small): epoch, position in the epoch's shard list, ordinal of the next sample in the
current shard, the RNG, and the buffered samples as (shard, ordinal, key) references; loading
re-opens the current shard at its ordinal and re-reads the buffered samples.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from qvltrain.data.reader import RawSample, ShardError, epoch_shards, iter_shard, read_ordinals
from qvltrain.data.skips import SkipLog


class DatasetStream:
    def __init__(
        self,
        name: str,
        shards: list[str],
        seed: int,
        reader: int,
        num_readers: int,
        buffer_size: int,
        skips: SkipLog,
    ):
        self.name, self.shards, self.seed = name, shards, seed
        self.reader, self.num_readers = reader, num_readers
        self.buffer_size = max(1, buffer_size)
        self.skips = skips
        self.rng = random.Random(f"{seed}-{name}-buffer-{reader}")
        self.epoch = 0
        self.position = 0  # index into this epoch's shard list
        self.ordinal = 0  # next sample ordinal in the current shard
        self.buffer: list[RawSample] = []
        self._samples: Iterator[RawSample] | None = None
        self._read_this_epoch = 0

    def _current_shards(self) -> list[str]:
        return epoch_shards(self.shards, self.seed, self.name, self.epoch, self.reader, self.num_readers)

    def _read_one(self) -> RawSample:
        """The next sample in shard order; broken shards are counted and left."""
        while True:
            shards = self._current_shards()
            if self.position >= len(shards):
                if self._read_this_epoch == 0:
                    raise RuntimeError(
                        f"dataset {self.name!r}: a whole epoch of reader {self.reader}'s shards held no "
                        f"readable sample (skips so far: {dict(self.skips.counts)})"
                    )
                self.epoch, self.position, self.ordinal, self._read_this_epoch = self.epoch + 1, 0, 0, 0
                continue
            url = shards[self.position]
            if self._samples is None:
                self._samples = iter_shard(url, self.ordinal)
            try:
                sample = next(self._samples)
            except StopIteration:
                sample = None
            except ShardError as error:
                self.skips.skip(
                    error.reason, error.key, error.url, str(error), stage="read", dataset=self.name
                )
                sample = None
            if sample is None:
                self._samples = None
                self.position, self.ordinal = self.position + 1, 0
                continue
            self.ordinal = sample.ordinal + 1
            self._read_this_epoch += 1
            return sample

    def next(self) -> RawSample:
        """A sample through the shuffle buffer (seeded; buffer_size 1 keeps shard order)."""
        while len(self.buffer) < self.buffer_size:
            self.buffer.append(self._read_one())
        index = self.rng.randrange(len(self.buffer))
        self.buffer[index], self.buffer[-1] = self.buffer[-1], self.buffer[index]
        return self.buffer.pop()

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "ordinal": self.ordinal,
            "read_this_epoch": self._read_this_epoch,
            "rng": self.rng.getstate(),
            "buffer": [(s.url, s.ordinal, s.key) for s in self.buffer],
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self.ordinal = state["epoch"], state["position"], state["ordinal"]
        self._read_this_epoch = state["read_this_epoch"]
        self.rng.setstate(_as_rng_state(state["rng"]))
        self._samples = None
        self.buffer = reread(state["buffer"])


def reread(refs: list[tuple[str, int, str]]) -> list[RawSample]:
    """RawSamples of (url, ordinal, key) references, in the order given, each shard scanned once."""
    wanted: dict[str, set[int]] = {}
    for url, ordinal, _ in refs:
        wanted.setdefault(url, set()).add(ordinal)
    found = {url: read_ordinals(url, ordinals) for url, ordinals in wanted.items()}
    samples = []
    for url, ordinal, key in refs:
        sample = found[url].get(ordinal)
        if sample is None or sample.key != key:
            raise ValueError(
                f"cannot resume: sample {ordinal} of {url} is {sample.key if sample else 'missing'!r}, "
                f"the saved state expects {key!r}; the shards changed since the checkpoint"
            )
        samples.append(sample)
    return samples


def _as_rng_state(state) -> tuple:
    """random.Random state back from a checkpoint (lists after some serialisers)."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
