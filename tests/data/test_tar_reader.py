"""Our tar stream parser against Python's tarfile on the formats shards come in."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile

import pytest

from qvltrain.data.reader import TarReadError, _decompressed, tar_members

MEMBERS = [
    ("s0.json", b'{"messages": []}'),
    ("s0.jpg", bytes(range(256)) * 7),  # not a multiple of 512
    ("deep/" + "d" * 120 + "/s1.json", b"{}"),  # over 100 chars: ustar prefix, GNU or pax name
    ("s1.\u00e9.txt", b"unicode name"),
    ("empty.txt", b""),
    ("block.bin", b"x" * 1024),  # exactly two blocks
]


def archive(tar_format: int, compress=None, members=MEMBERS) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as tar:
        directory = tarfile.TarInfo("deep")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "s0.json"
        tar.addfile(link)
    data = buffer.getvalue()
    return compress(data) if compress else data


def ours(data: bytes) -> list[tuple[str, bytes]]:
    return list(tar_members(_decompressed(io.BufferedReader(io.BytesIO(data)))))


def theirs(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]


@pytest.mark.parametrize("tar_format", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_formats_read_like_tarfile(tar_format: int) -> None:
    # ustar has no way to store a non-ASCII name
    members = [m for m in MEMBERS if tar_format != tarfile.USTAR_FORMAT or m[0].isascii()]
    data = archive(tar_format, members=members)
    assert ours(data) == theirs(data)
    assert [name for name, _ in ours(data)][:2] == ["s0.json", "s0.jpg"]


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed_shards_are_read(compress) -> None:
    data = archive(tarfile.PAX_FORMAT, compress)
    assert ours(data) == theirs(data) == ours(archive(tarfile.PAX_FORMAT))


def test_a_stream_without_peek_is_read() -> None:
    class Plain:  # what some fsspec or pipe streams look like
        def __init__(self, data: bytes):
            self._data = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self._data.read(size)

    for data in (archive(tarfile.GNU_FORMAT), archive(tarfile.GNU_FORMAT, gzip.compress)):
        assert list(tar_members(_decompressed(Plain(data)))) == theirs(data)


@pytest.mark.parametrize("cut", [700, 512 + 100, 512 * 3 + 5])
def test_a_cut_stream_is_an_error_not_a_short_shard(cut: int) -> None:
    data = archive(tarfile.GNU_FORMAT)
    with pytest.raises(TarReadError, match="before the stream ended"):
        ours(data[:cut])


def test_a_broken_header_is_an_error() -> None:
    data = bytearray(archive(tarfile.GNU_FORMAT))
    data[512 + 10] ^= 0xFF  # the second header's name: its checksum no longer matches
    with pytest.raises(TarReadError, match="checksum"):
        ours(bytes(data))


def test_a_stream_ending_on_a_member_boundary_ends_cleanly() -> None:
    data = archive(tarfile.GNU_FORMAT)
    end = len(data)
    while data[end - 512 : end] == bytes(512):  # drop the end-of-archive blocks and record padding
        end -= 512
    assert end < len(data) - 1024
    assert ours(data[:end]) == ours(data) == theirs(data)
