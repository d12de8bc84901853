"""One dataset's endless sample stream for one reader: fair epochs, a seeded shuffle buffer.

Readers are numbered across the job: reader = rank * workers + worker (global rank). An epoch of a
dataset is its shards in a seeded order (seed, dataset, epoch) read as one sequence of N samples
(counts from the shard index, data.shards); reader r of R reads the slice [r*N//R, (r+1)*N//R) of
that sequence, as (shard, first ordinal, end ordinal) segments. So one epoch visits every sample of
the dataset exactly once across all readers, whatever the shard count and sizes, and every reader
gets the same number of samples (+-1). A reader starting mid-shard reads past the samples before its
slice (at most one shard per epoch).

State (exact, small): epoch, position in the epoch's segment list, ordinal of the next sample in the
current shard, the RNG, and the buffered samples as (shard, ordinal, key) references; loading
re-opens the current shard at its ordinal and re-reads the buffered samples. After a resume by
another number of readers (data.resize) the current epoch's segments are given explicitly
(`segments`: what the saved readers had left, re-split); the next epoch is cut the usual way.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from qvltrain.data.reader import RawSample, ShardError, iter_samples, read_ordinals
from qvltrain.data.skips import SkipLog


@dataclass(frozen=True)
class Segment:
    """Samples [first, end) of one shard."""

    url: str
    first: int
    end: int


def epoch_segments(
    shards: list[str], counts: list[int], seed: int, name: str, epoch: int, reader: int, num_readers: int
) -> list[Segment]:
    """This reader's slice of `epoch` as shard segments, in reading order."""
    order = list(range(len(shards)))
    random.Random(f"{seed}-{name}-shards-{epoch}").shuffle(order)
    total = sum(counts)
    start, stop = reader * total // num_readers, (reader + 1) * total // num_readers
    segments, offset = [], 0
    for index in order:
        first, end = max(start - offset, 0), min(stop - offset, counts[index])
        if first < end:
            segments.append(Segment(shards[index], first, end))
        offset += counts[index]
    return segments


def check_split(name: str, counts: list[int], num_readers: int) -> None:
    """Every reader needs at least one sample per epoch."""
    if sum(counts) < num_readers:
        raise ValueError(
            f"dataset {name!r} has {sum(counts)} samples in {len(counts)} shards for {num_readers} readers "
            "(ranks x data.num_workers): every reader needs at least one; use fewer workers"
        )


class DatasetStream:
    def __init__(
        self,
        name: str,
        shards: list[str],
        counts: list[int],
        seed: int,
        reader: int,
        num_readers: int,
        buffer_size: int,
        skips: SkipLog,
    ):
        self.name, self.shards, self.counts, self.seed = name, shards, counts, seed
        self.reader, self.num_readers = reader, num_readers
        self.buffer_size = max(1, buffer_size)
        self.skips = skips
        self.rng = random.Random(f"{seed}-{name}-buffer-{reader}")
        self.epoch = 0
        self.position = 0  # index into this epoch's segment list
        self.ordinal = 0  # next sample ordinal in the current shard (0: the segment's first)
        self.buffer: list[RawSample] = []
        self._samples: Iterator[RawSample] | None = None
        self._read_this_epoch = 0
        self._segments: tuple[int, list[Segment]] | None = None
        self.given: list[Segment] | None = None
        """This epoch's segments when they are not this reader's slice: a re-split epoch (data.resize)."""

    def _current_segments(self) -> list[Segment]:
        if self.given is not None:
            return self.given
        if self._segments is None or self._segments[0] != self.epoch:
            segments = epoch_segments(
                self.shards, self.counts, self.seed, self.name, self.epoch, self.reader, self.num_readers
            )
            self._segments = (self.epoch, segments)
        return self._segments[1]

    def _leave_shard(self) -> None:
        if self._samples is not None:
            self._samples.close()
        self._samples = None
        self.position, self.ordinal = self.position + 1, 0

    def _read_one(self) -> RawSample:
        """The next sample of this reader's slice; broken shards and samples are counted and left."""
        while True:
            segments = self._current_segments()
            if self.position >= len(segments):
                if self.given is not None:  # a re-split epoch may hold few samples, or none, for a reader
                    self.given = None
                elif self._read_this_epoch == 0:
                    raise RuntimeError(
                        f"dataset {self.name!r}: a whole epoch of reader {self.reader}'s shards held no "
                        f"readable sample (skips so far: {dict(self.skips.counts)})"
                    )
                self.epoch, self.position, self.ordinal, self._read_this_epoch = self.epoch + 1, 0, 0, 0
                continue
            segment = segments[self.position]
            self.ordinal = max(self.ordinal, segment.first)
            if self.ordinal >= segment.end:
                self._leave_shard()
                continue
            if self._samples is None:
                self._samples = iter_samples(segment.url, self.ordinal)
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
                self._leave_shard()
                continue
            self.ordinal = sample.ordinal + 1
            if sample.problem is not None:
                self.skips.skip(
                    "duplicate_member",
                    sample.key,
                    sample.url,
                    sample.problem,
                    stage="read",
                    dataset=self.name,
                )
                continue
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
            "segments": None if self.given is None else [(g.url, g.first, g.end) for g in self.given],
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self.ordinal = state["epoch"], state["position"], state["ordinal"]
        self._read_this_epoch = state["read_this_epoch"]
        self.rng.setstate(_as_rng_state(state["rng"]))
        given = state.get("segments")
        self.given = None if given is None else [Segment(*segment) for segment in given]
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
