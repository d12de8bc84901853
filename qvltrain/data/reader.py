"""Shard reading for one reader (a rank's DataLoader worker): which shards, in which order, sample by sample.

Readers are numbered across the job: reader = (node rank * ranks per node + local rank) * workers +
worker, i.e. `rank * num_workers + worker` with the global rank. In epoch e a dataset's shard list
is shuffled with (seed, dataset, e) and reader r takes every num_readers-th shard from position r,
so each epoch reads every shard exactly once across the job, whatever the readers' speeds.

A sample is addressed by (shard, ordinal): its index among the samples of its shard. Resuming a
stream re-opens its shard and skips `ordinal` samples; re-reading a buffered sample scans its shard
for that ordinal. Shards are opened with webdataset's `gopen` (files, `pipe:`, http, gs, ...) or
fsspec for other URL schemes; the tar is read as a stream, so no seeking is needed.

The tar stream is parsed here (`tar_members`), not by `tarfile`, whose per-member objects cost
more than the parse (docs/benchmarks.md, loader). Headers are checked (checksum) and
ustar prefixes, pax `path`/`size` records and GNU long names are honoured; gzip, bz2 and xz
shards are decompressed on the fly, as tarfile's "r|*" did.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
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


class TarReadError(Exception):
    """The tar stream is cut or its header is broken."""


_BLOCK = 512


def _read_exactly(stream, size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise TarReadError(f"{what}: {len(data)} of {size} bytes before the stream ended")
    return data


def _octal(field: bytes, what: str) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for sizes over 8 GiB
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise TarReadError(f"{what}: bad number {text!r}") from None


def _pax_records(data: bytes) -> dict[str, str]:
    records, position = {}, 0
    while position < len(data):
        space = data.index(b" ", position)
        length = int(data[position:space])
        key, _, value = data[space + 1 : position + length - 1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


class _Prefixed:
    """A stream whose first bytes were already read (streams without `peek`)."""

    def __init__(self, head: bytes, stream):
        self._head, self._stream = head, stream

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(size)
        if size < 0:
            data, self._head = self._head + self._stream.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        return data + (self._stream.read(size - len(data)) if size > len(data) else b"")


def _decompressed(stream):
    """`stream`, decompressed if it starts like gzip, bzip2 or xz (as tarfile's "r|*" detects)."""
    if hasattr(stream, "peek"):
        head = stream.peek(6)[:6]
    else:
        head = stream.read(6)
        stream = _Prefixed(head, stream)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(stream, mode="rb")
    if head.startswith(b"\xfd7zXZ"):
        return lzma.LZMAFile(stream, mode="rb")
    return stream


def tar_members(stream) -> Iterator[tuple[str, bytes]]:
    """(name, data) of each regular file of a tar stream, in order. Raises TarReadError where the
    stream is cut or a header is broken; ends at the end-of-archive block or a clean end of stream."""
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        header = stream.read(_BLOCK)
        if not header or header == bytes(_BLOCK):
            return  # end of archive (or of a stream without the closing blocks)
        if len(header) != _BLOCK:
            raise TarReadError(f"header: {len(header)} of {_BLOCK} bytes before the stream ended")
        stored = _octal(header[148:156], "header checksum")
        if stored != sum(header) - sum(header[148:156]) + 8 * 32:
            raise TarReadError(f"header checksum {stored} does not match its header")
        type_flag = header[156:157]
        size = int(pax["size"]) if "size" in pax else _octal(header[124:136], "member size")
        name = header[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
        if prefix:
            name = prefix.decode("utf-8", "surrogateescape") + "/" + name
        name = pax.get("path", long_name or name)
        padded = -(-size // _BLOCK) * _BLOCK
        if type_flag in (b"x", b"L"):  # metadata of the next member
            data = _read_exactly(stream, padded, f"{name} extended header")[:size]
            if type_flag == b"x":
                pax = _pax_records(data)
            else:
                long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        data = _read_exactly(stream, size, name)
        _read_exactly(stream, padded - size, f"{name} padding")
        if type_flag in (b"0", b"\0", b"7"):  # regular files; directories, links etc. are not samples
            yield name, data
        long_name, pax = None, {}


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
        for name, data in tar_members(_decompressed(stream)):
            base = name.rsplit("/", 1)[-1]
            if "." not in base:
                continue  # not a sample member (webdataset convention: KEY.suffix)
            key, suffix = base.split(".", 1)
            key = name[: len(name) - len(base)] + key
            if current is None or key != current.key:
                if current is not None:
                    if current.ordinal >= start:
                        yield current
                    ordinal += 1
                current = RawSample(url, ordinal, key)
            if current.ordinal >= start:
                current.members[suffix] = data
        if current is not None and current.ordinal >= start:
            yield current
    except (TarReadError, EOFError, OSError, ValueError) as error:
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
