"""Statistics of shards, from their metadata alone (no pixel is decoded).

    result = report("data/digits/grounding/train", 8192, 32768, 256, "chatml")   # CLI: apps.shard_stats

Prints samples per task, a token-length histogram, the visual share of tokens, media counts and
sizes, and the packing efficiency the packer (windowed best-fit-decreasing) would reach at
--seq-len with --max-patches, so a mixture can be sized before a GPU is involved.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from qvltrain.data.packer import Budget, PlanItem, WindowedBestFitDecreasing, plan_all
from qvltrain.data.shards import expand_shards
from qvltrain.shards.check import iter_shard_samples


@dataclass
class ShardStats:
    num_samples: int = 0
    tasks: Counter = field(default_factory=Counter)
    lengths: list[int] = field(default_factory=list)
    patches: list[int] = field(default_factory=list)
    visual_tokens: int = 0
    media_files: int = 0
    media_bytes: int = 0
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    missing_counts: int = 0


def collect(spec: str, template: str) -> ShardStats:
    stats = ShardStats()
    for shard in expand_shards(spec):
        for sample in iter_shard_samples(shard):
            if isinstance(sample, tuple):  # (key, problem): not a sample
                continue
            meta = sample.sample.get("meta", {})
            tokens = meta.get("num_tokens_by_template", {}).get(template, meta.get("num_tokens"))
            stats.num_samples += 1
            stats.tasks[sample.sample.get("task", "?")] += 1
            stats.media_files += len(sample.media)
            stats.media_bytes += sum(len(data) for data in sample.media.values())
            stats.image_sizes += [tuple(size) for size in meta.get("image_sizes", [])]
            if not isinstance(tokens, int):
                stats.missing_counts += 1
                continue
            stats.lengths.append(tokens)
            stats.patches.append(int(meta.get("num_patches", 0)))
            stats.visual_tokens += int(meta.get("num_visual_tokens", 0))
    return stats


def histogram(values: list[int], num_bins: int = 10, width: int = 40) -> list[str]:
    """Integer bins of equal width covering min..max, one text line each."""
    low, high = min(values), max(values)
    bin_width = max(1, math.ceil((high - low + 1) / num_bins))
    counts = Counter((value - low) // bin_width for value in values)
    most = max(counts.values())
    lines = []
    for index in range((high - low) // bin_width + 1):
        start = low + index * bin_width
        bar = "#" * round(width * counts[index] / most)
        lines.append(f"  {start:>7}..{start + bin_width - 1:<7} {counts[index]:>7} {bar}")
    return lines


def packing_efficiency(stats: ShardStats, seq_len: int, max_patches: int, window: int) -> dict:
    items = [
        PlanItem(str(index), tokens, patches)
        for index, (tokens, patches) in enumerate(zip(stats.lengths, stats.patches, strict=True))
        if tokens <= seq_len and patches <= max_patches
    ]
    packs = list(plan_all(WindowedBestFitDecreasing(Budget(seq_len, max_patches), window), items))
    used = sum(item.num_tokens for pack in packs for item in pack)
    return {
        "packs": len(packs),
        "efficiency": used / (len(packs) * seq_len) if packs else 0.0,
        "too_long": len(stats.lengths) - len(items),
    }


def report(spec: str, seq_len: int, max_patches: int, window: int, template: str) -> dict:
    stats = collect(spec, template)
    if not stats.lengths:
        raise ValueError(f"{spec}: no sample with meta.num_tokens ({stats.num_samples} samples read)")
    packing = packing_efficiency(stats, seq_len, max_patches, window)
    total_tokens = sum(stats.lengths)
    return {
        "shards": spec,
        "num_samples": stats.num_samples,
        "tasks": dict(stats.tasks),
        "tokens": {
            "total": total_tokens,
            "mean": total_tokens / len(stats.lengths),
            "max": max(stats.lengths),
        },
        "visual_share": stats.visual_tokens / total_tokens,
        "media": {"files": stats.media_files, "mean_bytes": stats.media_bytes / max(stats.media_files, 1)},
        "image_sizes": {"count": len(stats.image_sizes), "distinct": len(set(stats.image_sizes))},
        "missing_num_tokens": stats.missing_counts,
        "packing": {"seq_len": seq_len, "max_patches": max_patches, "window": window, **packing},
        "histogram": histogram(stats.lengths),
    }
