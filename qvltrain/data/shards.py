"""Shard lists: a dataset's `shards` spec (folders, brace patterns, globs, URLs) -> shard paths, and
how many samples each shard holds (fair epochs split a dataset by samples, data.stream)."""

from __future__ import annotations

import glob
import json
import os

import braceexpand

from qvltrain.data.reader import RECORD_SUFFIXES, TAR_SUFFIXES, count_samples, is_url


def _folder_shards(folder: str) -> list[str]:
    """The tar shards of a folder (`.tar`, `.tar.gz`, ... in any letter case), sorted."""
    names = sorted(name for name in os.listdir(folder) if name.lower().endswith(TAR_SUFFIXES))
    return [os.path.join(folder, name) for name in names]


def expand_shards(spec: str) -> list[str]:
    """Shard paths or URLs of one dataset, in a stable order.

    `spec` is a folder (every `.tar`, `.tar.gz`, `.tgz`, `.tar.bz2`, `.tar.xz` inside, any letter
    case), a brace pattern (`train-{000000..000009}.tar`), a glob, a JSON/JSONL file of records,
    or a URL webdataset opens (`pipe:...`, `s3://...`), several separated by `::`.
    """
    shards: list[str] = []
    for part in spec.split("::"):
        for item in braceexpand.braceexpand(part):
            if is_url(item):
                shards.append(item)
            elif os.path.isdir(item):
                shards.extend(_folder_shards(item))
            elif any(ch in item for ch in "*?["):
                shards.extend(sorted(glob.glob(item)))
            else:
                shards.append(item)
    missing = [s for s in shards if not is_url(s) and not os.path.exists(s)]
    if not shards or missing:
        found = "no shard found (a folder lists *.tar and *.tar.gz)"
        raise ValueError(
            f"shards {spec!r}: {found if not shards else f'{len(missing)} missing, e.g. {missing[0]}'}"
        )
    return shards


def read_index_counts(shards: list[str]) -> dict[str, int]:
    """Shard path -> sample count, from every `<prefix>.index.json` beside local shards (ShardWriter)."""
    counts: dict[str, int] = {}
    folders = sorted({os.path.dirname(shard) for shard in shards if not is_url(shard)})
    for folder in folders:
        for name in sorted(os.listdir(folder or ".")):
            if name.endswith(".index.json"):
                with open(os.path.join(folder, name)) as index_file:
                    by_name = json.load(index_file).get("shards", {})
                counts.update({os.path.join(folder, shard): count for shard, count in by_name.items()})
    return counts


def shard_sample_counts(shards: list[str]) -> list[int]:
    """Samples per shard: from `<prefix>.index.json` where one lists the shard, else by reading it.

    Records files (JSON/JSONL) are always counted by reading (cheap); a tar without an index is read
    once here, in the main process of each rank, so large datasets should ship an index (ShardWriter
    writes one; docs/shard-format.md).
    """
    index = read_index_counts(shards)
    return [
        index[shard]
        if shard in index and not shard.lower().endswith(RECORD_SUFFIXES)
        else count_samples(shard)
        for shard in shards
    ]
