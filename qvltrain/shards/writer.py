"""ShardWriter: deterministic WebDataset tars (`KEY.json` + `KEY.<file>` members) and their index."""

from __future__ import annotations

import io
import json
import os
import tarfile
from typing import Any


class ShardWriter:
    """Writes samples into uncompressed tars of at most `max_samples` samples or `max_bytes` bytes.

    Output is byte-identical for identical input: fixed mtime, owner and mode, members in the order
    given, so a recipe run twice produces the same shards (and the same checksums).
    """

    def __init__(self, out_dir: str, prefix: str, max_samples: int = 1000, max_bytes: int = 1 << 30):
        if max_samples <= 0 or max_bytes <= 0:
            raise ValueError(
                f"ShardWriter: max_samples={max_samples}, max_bytes={max_bytes}: must be positive"
            )
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir, self.prefix = out_dir, prefix
        self.max_samples, self.max_bytes = max_samples, max_bytes
        self.counts: dict[str, int] = {}
        self._tar: tarfile.TarFile | None = None
        self._samples_in_shard = 0
        self._bytes_in_shard = 0

    def _open_next(self) -> None:
        self._close_current()
        name = f"{self.prefix}-{len(self.counts):06d}.tar"
        self._tar = tarfile.open(os.path.join(self.out_dir, name), "w", format=tarfile.USTAR_FORMAT)
        self.counts[name] = 0
        self._samples_in_shard = self._bytes_in_shard = 0

    def _close_current(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def write(self, key: str, sample_json: dict[str, Any], media: dict[str, bytes]) -> None:
        """One sample: `KEY.json` then `KEY.<file>` for each media file, in the order given."""
        if "." in key or "/" in key:
            raise ValueError(f"sample key {key!r}: must not contain '.' or '/' (webdataset splits on them)")
        members = [("json", json.dumps(sample_json, sort_keys=True, ensure_ascii=False).encode())]
        members += list(media.items())
        size = sum(len(data) + 1024 for _, data in members)
        if (
            self._tar is None
            or self._samples_in_shard >= self.max_samples
            or (self._samples_in_shard and self._bytes_in_shard + size > self.max_bytes)
        ):
            self._open_next()
        for suffix, data in members:
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self._samples_in_shard += 1
        self._bytes_in_shard += size
        self.counts[f"{self.prefix}-{len(self.counts) - 1:06d}.tar"] += 1

    def close(self) -> dict[str, int]:
        """Finish the last shard and write `<prefix>.index.json` (shard -> sample count)."""
        self._close_current()
        index_path = os.path.join(self.out_dir, f"{self.prefix}.index.json")
        with open(index_path, "w") as index_file:
            json.dump({"shards": self.counts, "num_samples": sum(self.counts.values())}, index_file, indent=1)
        return self.counts

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
