"""One shard sample (webdataset dict of bytes) -> a model-ready sample: patches, ids, labels, positions."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from qvltrain.data.config import DatasetConfig
from qvltrain.text.config import RenderConfig
from qvltrain.text.errors import SkipSample
from qvltrain.text.render import render_sample
from qvltrain.text.tokenizer import TokenizerInfo
from qvltrain.vision.errors import VisualInputError
from qvltrain.vision.image import load_image_patches
from qvltrain.vision.patches import VisualPatches


@dataclass
class DecodedSample:
    key: str
    source: str
    input_ids: torch.Tensor  # [L] int64
    labels: torch.Tensor  # [L] int64, -100 where not trained
    mm_token_type_ids: torch.Tensor  # [L] int32
    position_ids: torch.Tensor  # [3, L] int64 M-RoPE
    patches: list[VisualPatches]  # in token order


class BadSample(ValueError):
    """A sample that is skipped and counted; `reason` names the counter."""

    def __init__(self, reason: str, key: str, shard: str, detail: str):
        super().__init__(f"skipped sample {key!r} of {shard}: {reason}: {detail}")
        self.reason, self.key, self.shard = reason, key, shard


class SampleDecoder:
    """Decodes samples of one dataset under its budgets and template."""

    def __init__(self, dataset: DatasetConfig, template: str, info: TokenizerInfo, max_length: int):
        self.dataset = dataset
        self.info = info
        self.render_config = RenderConfig(template=dataset.template or template, max_length=max_length)

    def __call__(self, sample: dict) -> DecodedSample:
        key, shard = sample.get("__key__", "?"), sample.get("__url__", "?")
        try:
            return self._decode(sample, key)
        except (VisualInputError, SkipSample) as error:
            raise BadSample(getattr(error, "reason", "bad_sample"), key, shard, str(error)) from error
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise BadSample("invalid_json", key, shard, str(error)) from error
        except KeyError as error:
            raise BadSample("missing_media", key, shard, f"no member {error}") from error

    def _decode(self, sample: dict, key: str) -> DecodedSample:
        if "json" not in sample:
            raise KeyError(f"{key}.json")
        record = json.loads(sample["json"])
        messages = record["messages"]
        patches: list[VisualPatches] = []
        image_sizes: list[tuple[int, int]] = []
        for message in messages:
            for item in message.get("content", []):
                if isinstance(item, dict) and item.get("type") == "image":
                    name = f"{key}.{item['file']}"
                    visual = load_image_patches(sample[item["file"]], self.dataset.image_budget, name)
                    patches.append(visual)
                elif isinstance(item, dict) and item.get("type") == "video":
                    raise SkipSample("unsupported_video", f"{key}: video samples need the packer pipeline")
        image_sizes = [tuple(size) for size in record.get("meta", {}).get("image_sizes", [])]
        rendered = render_sample(
            messages, [p.grid_thw for p in patches], image_sizes, self.info, self.render_config
        )
        return DecodedSample(
            key=key,
            source=self.dataset.name,
            input_ids=rendered.input_ids,
            labels=rendered.labels,
            mm_token_type_ids=rendered.mm_token_type_ids.to(torch.int32),
            position_ids=rendered.position_ids[1:],  # M-RoPE rows; row 0 (text) is for packing
            patches=patches,
        )
