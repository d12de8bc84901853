"""Check written shards against docs/shard-format.md: schema, media, sizes, index, token counts.

    report = check_shards("data/digits/caption/train")      # CLI: python -m apps.check_shards

Every recipe runs this on what it writes; users run it on their own shards before training. Media
sizes are read from file headers only (no pixel is decoded), so a pass over a dataset is quick.
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from PIL import ExifTags, Image, UnidentifiedImageError

from qvltrain.data.formats import to_schema
from qvltrain.data.reader import ShardError, is_records_file, is_url, iter_samples, sample_media
from qvltrain.data.shards import expand_shards, read_index_counts
from qvltrain.shards.schema import check_sample, media_files, visual_items
from qvltrain.text.errors import SkipSample


@dataclass
class ShardSample:
    """One sample as stored in a tar: its key, its parsed KEY.json and its other members' bytes."""

    shard: str
    key: str
    sample: dict
    media: dict[str, bytes]
    converted: bool = False
    """The record came in another format (data.formats): checked for messages and media, not meta."""


@dataclass
class CheckReport:
    """Outcome of validating a set of shards; valid when `num_errors` is 0."""

    num_shards: int = 0
    num_samples: int = 0
    num_errors: int = 0
    errors: list[str] = field(default_factory=list)
    """The first `max_errors` problems, each naming its shard and key."""
    tasks: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return self.num_errors == 0

    def summary(self) -> str:
        tasks = ", ".join(f"{task} {count}" for task, count in sorted(self.tasks.items()))
        verdict = "valid" if self.ok else f"{self.num_errors} problem(s)"
        return f"{self.num_samples} samples in {self.num_shards} shards ({tasks}): {verdict}"


def iter_shard_samples(shard: str) -> Iterator[ShardSample | tuple[str, str]]:
    """Samples of one shard in order, read as the loader reads them (qvltrain.data.reader); yields
    (key, problem) for what does not form a sample: a member stored twice, no or bad KEY.json, a
    shard that cannot be opened or ends mid-member (then nothing more of it is read).

    Records in the formats data.formats converts (ShareGPT, LLaVA) are checked after conversion.
    """
    samples = iter_samples(shard)
    while True:
        try:
            raw = next(samples)
        except StopIteration:
            return
        except ShardError as error:
            yield error.key, str(error)
            return
        if raw.problem is not None:
            yield raw.key, raw.problem
            continue
        if "json" not in raw.members:
            yield raw.key, f"members {sorted(raw.members)} have no {raw.key}.json"
            continue
        media = dict(raw.members)
        try:
            record = json.loads(media.pop("json"))
            sample = to_schema(record)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            yield raw.key, f"not JSON: {error}"
            continue
        except SkipSample as error:
            yield raw.key, f"{error.reason}: {error.detail}"
            continue
        yield ShardSample(shard, raw.key, sample, media, converted=sample is not record)


def image_header_size(data: bytes) -> tuple[int, int]:
    """(width, height) as the loader will see the image (EXIF rotation applied), from the header only."""
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        # Orientations 5-8 swap the sides (decode_image applies them before sizing).
        if image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
            return height, width
        return width, height


def check_media_sizes(sample: dict, media: dict[str, bytes]) -> list[str]:
    """meta.image_sizes / meta.video_sizes against the stored files' headers."""
    meta = sample.get("meta", {})
    image_sizes, video_sizes = meta.get("image_sizes", []), meta.get("video_sizes", [])
    problems, image_index, video_index = [], 0, 0
    for item in visual_items(sample):
        files = [name for name in media_files(item) if name in media]
        try:
            sizes = {
                image_header_size(media[name])
                for name in files
                if item["type"] == "image" or "frames" in item
            }
        except (UnidentifiedImageError, OSError) as error:
            problems.append(f"{item['type']} {files[:1]}: cannot be read as an image ({error})")
            sizes = set()
        if item["type"] == "image":
            expected = tuple(image_sizes[image_index]) if image_index < len(image_sizes) else None
            image_index += 1
        else:
            expected = tuple(video_sizes[video_index]) if video_index < len(video_sizes) else None
            video_index += 1
        if len(sizes) > 1:
            problems.append(f"video frames differ in size: {sorted(sizes)}")
        elif sizes and expected is not None and sizes != {expected}:
            problems.append(
                f"{item['type']} {files[0]!r} is {sizes.pop()} (width, height) but meta says {list(expected)}"
            )
    return problems


def check_record_media(sample: dict, media) -> list[str]:
    """A JSON/JSONL record (after conversion): it has messages and each media file it names can be read."""
    if not isinstance(sample, dict) or not isinstance(sample.get("messages"), list):
        return ["the record has no 'messages' (or 'conversations') list"]
    problems = []
    for item in visual_items(sample):
        for name in media_files(item):
            try:
                media[name]
            except KeyError as error:
                problems.append(f"{item['type']} file cannot be read: {error.args[0]}")
    return problems


def check_shards(
    spec: str, token_checker=None, max_errors: int = 50, media_root: str | None = None
) -> CheckReport:
    """Check every sample of the shards `spec` names (a folder, pattern or list joined by '::'; tar
    shards or JSON/JSONL files of records whose relative media paths are under `media_root`).

    token_checker: optional callable(sample, shard) -> problem or None (see token_count.TokenChecker).
    """
    shards = expand_shards(spec)
    report = CheckReport(num_shards=len(shards))
    index_counts = read_index_counts(shards)
    seen_keys: dict[str, str] = {}

    def problem(shard: str, key: str, message: str) -> None:
        report.num_errors += 1
        if len(report.errors) < max_errors:
            where = shard if is_url(shard) else os.path.basename(shard)
            report.errors.append(f"{where}:{key}: {message}")

    for shard in shards:
        num_in_shard = 0
        for entry in iter_shard_samples(shard):
            if isinstance(entry, tuple):
                problem(shard, *entry)
                continue
            num_in_shard += 1
            report.num_samples += 1
            if entry.key in seen_keys:
                problem(shard, entry.key, f"key also used in {seen_keys[entry.key]}")
            seen_keys[entry.key] = os.path.basename(shard)
            if is_records_file(shard) or entry.converted:  # media files / members, no meta to check
                problems = check_record_media(entry.sample, sample_media(entry.media, shard, media_root))
            else:
                problems = check_sample(entry.sample, set(entry.media))
                if not problems:
                    problems = check_media_sizes(entry.sample, sample_media(entry.media, shard, None))
            if not problems and token_checker is not None:
                problems = [message for message in [token_checker(entry.sample, shard)] if message]
            for message in problems:
                problem(shard, entry.key, message)
            if isinstance(entry.sample, dict):
                report.tasks[str(entry.sample.get("task"))] += 1
        expected = index_counts.get(shard)
        if expected is not None and expected != num_in_shard:
            problem(shard, "-", f"index says {expected} samples, the tar holds {num_in_shard}")
    return report
