"""The hand-written tar stream parser the loader used before it read shards with webdataset: kept
here only as the baseline of `apps.bench.loader` (docs/benchmarks.md, "hand-written parser vs
webdataset"), never on the data path.

    members = hand_written_members(stream)   # (name, data) per regular file, like reader.tar_members
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from collections.abc import Iterator


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


def hand_written_members(stream) -> Iterator[tuple[str, bytes]]:
    """Drop-in for qvltrain.data.reader.tar_members (decompression included)."""
    return tar_members(_decompressed(stream))
