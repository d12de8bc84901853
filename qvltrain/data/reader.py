"""Shard reading for one reader (a rank's DataLoader worker): which shards, in which order, sample by sample.

Readers are numbered across the job: reader = (node rank * ranks per node + local rank) * workers +
worker, i.e. `rank * num_workers + worker` with the global rank. In epoch e a dataset's shard list
is shuffled with (seed, dataset, e) and reader r takes every num_readers-th shard from position r,
so each epoch reads every shard exactly once across the job, whatever the readers' speeds.

A sample is addressed by (shard, ordinal): its index among the samples of its shard. Resuming a
stream re-opens its shard and skips `ordinal` samples; re-reading a buffered sample scans its shard
for that ordinal. Shards are opened with webdataset's `gopen` (files, `pipe:`, http, gs, ...) or
fsspec for other URL schemes; the tar is read as a stream, so no seeking is needed.
"""

from __future__ import annotations

import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from qvltrain.data.shards import expand_shards


class ShardError(Exception):
    """A shard that ends mid-member or cannot be opened; the rest of the shard is skipped and counted."""

    def __init__(self, reason: str, url: str, key: str, detail: str):
        super().__init__(f"{reason} in {url} at {key!r}: {detail}")
        self.reason, self.url, self.key = reason, url, key


@dataclass
class RawSample:
    """One shard sample before decoding: its members' bytes by suffix (`json`, `0.jpg`, ...)."""

    url: str
    ordinal: int
    key: str
    members: dict[str, bytes] = field(default_factory=dict)


def open_url(url: str):
    """A binary stream of a shard path or URL."""
    import webdataset as wds
    from webdataset.gopen import gopen_schemes

    scheme = url.split(":", 1)[0] if "://" in url or url.startswith("pipe:") else ""
    if scheme and scheme not in gopen_schemes:
        import fsspec  # s3://, az://, ... as fsspec knows them

        return fsspec.open(url, "rb").open()
    return wds.gopen(url, "rb")


def iter_shard(url: str, start: int = 0) -> Iterator[RawSample]:
    """Samples of one tar shard from ordinal `start`, grouped by key in member order.

    Raises ShardError("truncated_tar" | "unreadable_shard") at the point the shard breaks; samples
    before it have been yielded. The sample being assembled when it breaks is not yielded.
    """
    try:
        stream = open_url(url)
    except (OSError, ValueError) as error:
        raise ShardError("unreadable_shard", url, "-", str(error)) from error
    current: RawSample | None = None
    ordinal = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                if "." not in base:
                    continue  # not a sample member (webdataset convention: KEY.suffix)
                prefix = member.name[: len(member.name) - len(base)]
                key, suffix = base.split(".", 1)
                key = prefix + key
                if current is None or key != current.key:
                    if current is not None:
                        if current.ordinal >= start:
                            yield current
                        ordinal += 1
                    current = RawSample(url, ordinal, key)
                reader = tar.extractfile(member)
                data = reader.read() if current.ordinal >= start else b""
                if current.ordinal >= start and len(data) != member.size:
                    raise tarfile.ReadError(f"member {member.name} has {len(data)} of {member.size} bytes")
                current.members[suffix] = data
        if current is not None and current.ordinal >= start:
            yield current
    except (tarfile.TarError, EOFError, OSError) as error:
        key = current.key if current is not None else "-"
        raise ShardError("truncated_tar", url, key, str(error)) from error
    finally:
        stream.close()


def epoch_shards(
    shards: list[str], seed: int, name: str, epoch: int, reader: int, num_readers: int
) -> list[str]:
    """This reader's shards of `epoch`, in reading order."""
    order = list(shards)
    random.Random(f"{seed}-{name}-shards-{epoch}").shuffle(order)
    return order[reader::num_readers]


def dataset_shards(name: str, spec: str, num_readers: int) -> list[str]:
    """All shards of a dataset; every reader needs at least one."""
    shards = expand_shards(spec)
    if len(shards) < num_readers:
        raise ValueError(
            f"dataset {name!r} has {len(shards)} shards for {num_readers} readers (ranks x data.num_workers): "
            "every reader needs at least one; write smaller shards or use fewer workers"
        )
    return shards


def read_ordinals(url: str, ordinals: set[int]) -> dict[int, RawSample]:
    """The samples of `url` at `ordinals` (re-reading buffered samples on resume)."""
    found: dict[int, RawSample] = {}
    if not ordinals:
        return found
    last = max(ordinals)
    try:
        for sample in iter_shard(url, min(ordinals)):
            if sample.ordinal in ordinals:
                found[sample.ordinal] = sample
            if sample.ordinal >= last:
                break
    except ShardError:
        pass  # a truncated shard: what was before the break was read as in the first pass
    return found
