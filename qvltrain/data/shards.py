"""Shard lists: a dataset's `shards` spec (folders, brace patterns, globs, URLs) -> shard paths."""

from __future__ import annotations

import glob
import os

import braceexpand


def expand_shards(spec: str) -> list[str]:
    """Shard paths or URLs of one dataset, in a stable order.

    `spec` is a folder (all *.tar inside), a brace pattern (`train-{000000..000009}.tar`), a glob, or
    a URL webdataset opens (`pipe:...`, `s3://...`), several separated by `::`.
    """
    shards: list[str] = []
    for part in spec.split("::"):
        for item in braceexpand.braceexpand(part):
            if item.startswith("pipe:") or "://" in item:
                shards.append(item)
            elif os.path.isdir(item):
                shards.extend(sorted(glob.glob(os.path.join(item, "*.tar"))))
            elif any(ch in item for ch in "*?["):
                shards.extend(sorted(glob.glob(item)))
            else:
                shards.append(item)
    missing = [s for s in shards if "://" not in s and not s.startswith("pipe:") and not os.path.exists(s)]
    if not shards or missing:
        raise ValueError(
            f"shards {spec!r}: {'no shard found' if not shards else f'{len(missing)} missing, e.g. {missing[0]}'}"
        )
    return shards
