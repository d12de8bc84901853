"""One shard sample (webdataset dict of bytes) -> a model-ready sample: patches, ids, labels, positions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from qvltrain.data.config import DatasetConfig
from qvltrain.data.formats import to_schema
from qvltrain.data.reader import sample_media
from qvltrain.text.config import RenderConfig
from qvltrain.text.errors import SkipSample
from qvltrain.text.render import render_sample
from qvltrain.text.tokenizer import TokenizerInfo
from qvltrain.vision.errors import VisualInputError
from qvltrain.vision.image import decode_image, image_to_patches
from qvltrain.vision.patches import VisualPatches
from qvltrain.vision.video import frames_to_patches, video_to_patches

TASKS = ("caption", "chat", "grounding", "text", "video")
"""The one list of tasks: the loader here, the shard schema and the shard check (qvltrain.shards) agree."""


@dataclass
class DecodedSample:
    key: str
    source: str
    input_ids: torch.Tensor  # [L] int64
    labels: torch.Tensor  # [L] int64, -100 where not trained
    mm_token_type_ids: torch.Tensor  # [L] int32
    position_ids: torch.Tensor  # [4, L] int64: row 0 text positions 0..L-1, rows 1-3 M-RoPE
    patches: list[VisualPatches]  # in token order

    @property
    def num_patches(self) -> int:
        return sum(p.num_patches for p in self.patches)


class BadSample(ValueError):
    """A sample that is skipped and counted; `reason` names the counter."""

    def __init__(self, reason: str, key: str, shard: str, detail: str):
        super().__init__(f"skipped sample {key!r} of {shard}: {reason}: {detail}")
        self.reason, self.key, self.shard = reason, key, shard


"""Values of a sample's `task` (docs/formats.md); anything else is an `unknown_task` skip."""


def parse_record(data: bytes | None, key: str, shard: str) -> dict:
    """KEY.json -> its dict in our schema (data.formats converts ShareGPT / LLaVA records);
    BadSample invalid_json / missing_json / unknown_task / media_tag_mismatch."""
    if data is None:
        raise BadSample("missing_json", key, shard, "the sample has no .json member")
    try:
        record = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadSample("invalid_json", key, shard, str(error)) from error
    try:
        record = to_schema(record)
    except SkipSample as error:
        raise BadSample(error.reason, key, shard, error.detail) from error
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise BadSample("invalid_json", key, shard, "expected an object with a 'messages' list")
    if record.get("task", "chat") not in TASKS:
        raise BadSample("unknown_task", key, shard, f"task {record.get('task')!r}, expected one of {TASKS}")
    return record


def check_image_sizes(image_sizes: list[tuple], decoded_sizes: list[tuple[str, tuple[int, int]]]) -> None:
    """meta.image_sizes, which box coordinates are normalised by, must be the decoded images' sizes.

    A disagreement (a shard re-encoded at another size, a stale meta, an EXIF rotation the recipe did
    not apply) would put every box in the wrong place: the sample is a counted `image_size_mismatch`.
    """
    # A meta listing fewer sizes than images is the shard validator's to report (schema.py).
    for index, (size, (member, decoded)) in enumerate(zip(image_sizes, decoded_sizes, strict=False)):
        if tuple(size) != tuple(decoded):
            raise SkipSample(
                "image_size_mismatch",
                f"image {index} ({member}) decodes to {decoded[0]}x{decoded[1]} (width x height, after "
                f"EXIF orientation) but meta.image_sizes[{index}] is {list(size)}",
            )


class SampleDecoder:
    """Decodes samples of one dataset under its budgets and template."""

    def __init__(
        self,
        dataset: DatasetConfig,
        template: str,
        info: TokenizerInfo,
        max_length: int,
        position_rule: str = "paper",
        render_options: Mapping[str, Any] | None = None,
    ):
        """`render_options`: further RenderConfig fields the model family sets (box_format, ...)."""
        self.dataset = dataset
        self.info = info
        options = {"position_rule": position_rule, **(render_options or {})}
        self.render_config = RenderConfig(
            template=dataset.template or template, max_length=max_length, **options
        )

    def decode_raw(self, raw) -> DecodedSample:
        """A reader's RawSample -> DecodedSample, or BadSample."""
        return self.decode(
            parse_record(raw.members.get("json"), raw.key, raw.url), raw.members, raw.key, raw.url
        )

    def __call__(self, sample: dict) -> DecodedSample:
        """A webdataset-style dict (`__key__`, `__url__`, `json`, media suffixes) -> DecodedSample."""
        key, shard = sample.get("__key__", "?"), sample.get("__url__", "?")
        return self.decode(parse_record(sample.get("json"), key, shard), sample, key, shard)

    def decode(self, record: dict, media: dict, key: str, shard: str) -> DecodedSample:
        """A parsed KEY.json and the sample's members by suffix -> DecodedSample, or BadSample."""
        media = sample_media(media, shard, self.dataset.media_root)
        try:
            return self._decode(record, media, key)
        except SkipSample as error:
            raise BadSample(error.reason, key, shard, error.detail or error.reason) from error
        except VisualInputError as error:
            raise BadSample(error.reason, key, shard, str(error)) from error
        except KeyError as error:
            raise BadSample("missing_media", key, shard, f"no member {error}") from error
        except (TypeError, ValueError, AttributeError) as error:  # malformed messages / items
            raise BadSample("malformed_sample", key, shard, f"{type(error).__name__}: {error}") from error

    def _visual(self, item: dict, media: dict, key: str, decoded_sizes: list) -> VisualPatches:
        if item["type"] == "image":
            name = f"{key}.{item['file']}"
            image = decode_image(media[item["file"]], name)  # EXIF orientation applied
            decoded_sizes.append((item["file"], image.size))
            return image_to_patches(image, self.dataset.image_budget, name)
        budget = self.dataset.video_budget
        if budget is None:
            raise SkipSample("no_video_budget", f"dataset {self.dataset.name!r} has no video_budget")
        if "frames" in item:
            frames = [media[name] for name in item["frames"]]
            return frames_to_patches(frames, item["timestamps"], budget, f"{key}.video")
        return video_to_patches(media[item["file"]], budget, f"{key}.{item['file']}")

    def _decode(self, record: dict, media: dict, key: str) -> DecodedSample:
        messages = record["messages"]
        patches: list[VisualPatches] = []
        decoded_sizes: list[tuple[str, tuple[int, int]]] = []  # (member, (width, height)) per image
        for message in messages:
            content = message.get("content", []) if isinstance(message, dict) else []
            for item in content if isinstance(content, list) else []:
                if isinstance(item, dict) and item.get("type") in ("image", "video"):
                    patches.append(self._visual(item, media, key, decoded_sizes))
        image_sizes = [tuple(size) for size in record.get("meta", {}).get("image_sizes", [])]
        check_image_sizes(image_sizes, decoded_sizes)
        rendered = render_sample(
            messages,
            [p.grid_thw for p in patches],
            image_sizes,
            self.info,
            self.render_config,
            video_second_per_grid=[p.second_per_grid_t for p in patches if p.second_per_grid_t is not None],
        )
        return DecodedSample(
            key=key,
            source=self.dataset.name,
            input_ids=rendered.input_ids,
            labels=rendered.labels,
            mm_token_type_ids=rendered.mm_token_type_ids.to(torch.int32),
            position_ids=rendered.position_ids,
            patches=patches,
        )
