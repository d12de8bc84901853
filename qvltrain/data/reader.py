"""The one shard reader: a tar shard (or a JSON/JSONL file of records) -> its samples, in order.

    for raw in iter_samples(url, start=0):   # RawSample(url, ordinal, key, members by suffix)

Everything that reads shards goes through here: the training loader (data.stream), the shard
check and stats (qvltrain.shards), held-out generation (apps.heldout_eval) and the benchmarks.

- Opening: webdataset's `gopen` (local paths, `pipe:`, http(s), gs, ...) and fsspec for other URL
  schemes (s3://, az://, ...). The tar is iterated by webdataset (`tar_file_iterator`, tarfile's
  stream mode, so `.tar`, `.tar.gz`, `.tar.bz2` and `.tar.xz` alike); nothing seeks.
- Keys and suffixes are webdataset's: a member `dir/KEY.a.b` is key `dir/KEY`, suffix `a.b`, and
  the suffix is lower-cased (`0.JPG` is `0.jpg`; media names in KEY.json are matched lower-cased
  too, `member_name`). Members whose base name has no dot, and `__*__` members, are not samples.
- A sample is addressed by (url, ordinal): its index among the samples of its shard, so a stream
  resumes by re-opening its shard and skipping `ordinal` samples.
- Problems: a shard that cannot be opened or ends mid-member raises ShardError (samples before it
  have been yielded); a sample holding the same member twice is yielded with `problem` set (the
  caller counts it as a `duplicate_member` skip: never "the last one wins").
- A `.json` (a list of records) or `.jsonl` (one record per line) file is a shard of records: each
  record is a sample with a single `json` member, its key `line<N>` (JSONL, 1-based line number,
  blank lines are not samples) or `record<N>` (JSON list index); media paths in the records are read
  at decode time (data.decode, relative to the dataset's `media_root`).
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

RECORD_SUFFIXES = (".json", ".jsonl")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


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
    problem: str | None = None
    """Set when the sample is malformed as a whole (a member stored twice): a counted skip."""


def member_name(name: str) -> str:
    """A member suffix or a media name from KEY.json, as the reader stores it (webdataset lower-cases)."""
    return name.lower()


def split_member_name(name: str) -> tuple[str, str] | None:
    """(key, suffix) of a tar member as webdataset groups it, or None when it is not a sample member."""
    from webdataset.tariterators import base_plus_ext

    key, suffix = base_plus_ext(name)
    return None if key is None else (key, member_name(suffix))


def is_records_file(url: str) -> bool:
    """A JSON/JSONL file of records rather than a tar shard."""
    return url.lower().endswith(RECORD_SUFFIXES)


def open_url(url: str):
    """A binary stream of a shard path or URL."""
    import webdataset as wds
    from webdataset.gopen import gopen_schemes

    scheme = url.split(":", 1)[0] if "://" in url or url.startswith("pipe:") else ""
    if scheme and scheme not in gopen_schemes:
        import fsspec  # s3://, az://, ... as fsspec knows them

        return fsspec.open(url, "rb").open()
    return wds.gopen(url, "rb")


def _open(url: str):
    try:
        return open_url(url)
    except (OSError, ValueError, ImportError) as error:
        raise ShardError("unreadable_shard", url, "-", f"cannot open: {error}") from error


class _Counted:
    """A stream that counts the bytes read through it, after `head` (bytes already read from it)."""

    def __init__(self, stream, head: bytes = b""):
        self.stream, self.head, self.num_bytes = stream, head, 0

    def read(self, size: int = -1) -> bytes:
        if self.head:
            data, self.head = (self.head, b"") if size < 0 else (self.head[:size], self.head[size:])
            if size < 0 or len(data) < size:
                data += self.stream.read(-1 if size < 0 else size - len(data))
        else:
            data = self.stream.read(size)
        self.num_bytes += len(data)
        return data


def _decompressed(stream) -> _Counted:
    """The tar bytes of a shard stream: gzip, bzip2 and xz are recognised by their first bytes."""
    head = stream.read(6)
    source = _Counted(stream, head)
    if head.startswith(b"\x1f\x8b"):
        return _Counted(gzip.GzipFile(fileobj=source, mode="rb"))
    if head.startswith(b"BZh"):
        return _Counted(bz2.BZ2File(source, mode="rb"))
    if head.startswith(b"\xfd7zXZ"):
        return _Counted(lzma.LZMAFile(source, mode="rb"))
    return source


def tar_members(stream) -> Iterator[tuple[str, bytes]]:
    """(name, data) of the regular files of a tar stream in order, by webdataset's iterator.

    After the last member the stream is read to its end: that checks a compressed shard's CRC and
    length (tarfile stops at the end-of-archive block, before them, so a corrupt .tar.gz would pass
    unnoticed), and that an uncompressed one is whole 512-byte blocks (tarfile's stream mode ends
    quietly at a header cut short).
    """
    from webdataset.tariterators import tar_file_iterator

    tar = _decompressed(stream)
    for member in tar_file_iterator(tar):
        yield member["fname"], member["data"]
    while tar.read(1 << 16):
        pass
    if tar.num_bytes % 512:
        raise tarfile.ReadError(f"the stream ends inside a header ({tar.num_bytes} bytes, not whole blocks)")


# What a cut or corrupt stream raises inside tarfile / gzip / bz2 / lzma.
_STREAM_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)
_COMPRESSION_ERRORS = (zlib.error, lzma.LZMAError, gzip.BadGzipFile)


def _tar_samples(url: str, start: int) -> Iterator[RawSample]:
    stream = _open(url)
    current: RawSample | None = None
    ordinal, finished = 0, False
    try:
        for name, data in tar_members(stream):
            split = split_member_name(name)
            if split is None:
                continue
            key, suffix = split
            if current is None or key != current.key:
                if current is not None:
                    if current.ordinal >= start:
                        yield current
                    ordinal += 1
                current = RawSample(url, ordinal, key)
            if current.ordinal < start:
                continue
            if suffix in current.members:
                current.problem = f"member {name!r} appears twice in the sample"
            current.members[suffix] = data
        finished = True
        if current is not None and current.ordinal >= start:
            yield current
    except _STREAM_ERRORS as error:
        finished = False
        key = current.key if current is not None else "-"
        _close(stream, url)  # a `pipe:` whose command failed: that is the cause, not the cut stream
        corrupt = isinstance(error, _COMPRESSION_ERRORS) or "compress" in str(error)
        reason = "corrupt_compression" if corrupt else "truncated_tar"
        raise ShardError(reason, url, key, f"{type(error).__name__}: {error}") from error
    finally:
        _close(stream, url, report=finished)


def _close(stream, url: str, report: bool = True) -> None:
    """Close a shard stream; `report`: a failure is the shard's (a `pipe:` whose command failed)."""
    try:
        stream.close()
    except OSError as error:
        if report:
            raise ShardError("unreadable_shard", url, "-", str(error)) from error


def _record_samples(url: str, start: int) -> Iterator[RawSample]:
    stream = _open(url)
    try:
        data = stream.read()
    except OSError as error:
        raise ShardError("unreadable_shard", url, "-", str(error)) from error
    finally:
        _close(stream, url)
    if url.lower().endswith(".jsonl"):
        ordinal = 0
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            if ordinal >= start:
                yield RawSample(url, ordinal, f"line{number}", {"json": line})
            ordinal += 1
        return
    try:
        records = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ShardError("unreadable_shard", url, "-", f"not JSON: {error}") from error
    if not isinstance(records, list):
        raise ShardError("unreadable_shard", url, "-", "a .json dataset file must hold a list of records")
    for ordinal in range(start, len(records)):
        record = json.dumps(records[ordinal], ensure_ascii=False).encode()
        yield RawSample(url, ordinal, f"record{ordinal}", {"json": record})


def iter_samples(url: str, start: int = 0) -> Iterator[RawSample]:
    """Samples of one shard (tar or records file) from ordinal `start`, in order.

    Raises ShardError("truncated_tar" | "unreadable_shard") where the shard breaks; the samples
    before it have been yielded, the one being assembled is not.
    """
    if is_records_file(url):
        return _record_samples(url, start)
    return _tar_samples(url, start)


class _Members(Mapping):
    """A tar sample's members, looked up by the media names of its KEY.json (lower-cased, as stored)."""

    def __init__(self, members: Mapping[str, bytes]):
        self._members = members

    def __getitem__(self, name: str) -> bytes:
        return self._members[member_name(name)]

    def __iter__(self):
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)


class _MediaFolder(Mapping):
    """Media of a JSON/JSONL record: files under `root` (absolute paths as they are), read on access."""

    def __init__(self, root: str):
        self.root = root

    def path(self, name: str) -> str:
        if os.path.isabs(name) or is_url(name):
            return name
        return f"{self.root.rstrip('/')}/{name}" if is_url(self.root) else os.path.join(self.root, name)

    def __getitem__(self, name: str) -> bytes:
        path = self.path(name)
        try:
            stream = open_url(path)
            try:
                return stream.read()
            finally:
                stream.close()
        except (OSError, ValueError) as error:
            raise KeyError(f"{path} ({type(error).__name__}: {error})") from error

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0


def sample_media(members: Mapping[str, bytes], url: str, media_root: str | None) -> Mapping[str, bytes]:
    """Where a sample's media names resolve: its tar members, or files for a JSON/JSONL record
    (under `media_root`, by default the records file's folder)."""
    if isinstance(members, (_Members, _MediaFolder)):
        return members
    if is_records_file(url):
        return _MediaFolder(media_root if media_root is not None else os.path.dirname(url))
    return _Members(members)


def is_url(item: str) -> bool:
    """A URL webdataset or fsspec opens, not a local path."""
    return item.startswith("pipe:") or "://" in item


def count_samples(url: str) -> int:
    """Samples of a shard, by reading it; a shard that breaks counts one more, so that a reader's
    slice reaches the break and counts it (a `truncated_tar` skip) like the samples after it."""
    count = 0
    try:
        for _ in iter_samples(url):
            count += 1
    except ShardError:
        return count + 1
    return count


def read_ordinals(url: str, ordinals: set[int]) -> dict[int, RawSample]:
    """The samples of `url` at `ordinals` (re-reading buffered samples on resume)."""
    found: dict[int, RawSample] = {}
    if not ordinals:
        return found
    last = max(ordinals)
    samples = iter_samples(url, min(ordinals))
    try:
        for sample in samples:
            if sample.ordinal in ordinals:
                found[sample.ordinal] = sample
            if sample.ordinal >= last:
                break
    except ShardError:
        pass  # a truncated shard: what was before the break was read as in the first pass
    finally:
        samples.close()
    return found
