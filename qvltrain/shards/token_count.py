"""meta.num_tokens: a sample's rendered length (text + visual) from sizes alone, for the packer to plan.

The count is exact, not estimated: the sample is rendered with `render_sample` under the recipe's
tokenizer, template and budgets, with grids from `image_grid` / `video_grid` (what the loader's
vision side produces for the same media). It stays exact only for those settings, so recipes record
them in `<prefix>.recipe.json` and `python -m apps.check_shards --check-tokens` re-checks them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from qvltrain.shards.schema import visual_items
from qvltrain.text.config import TEMPLATES, RenderConfig
from qvltrain.text.render import render_sample
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer
from qvltrain.vision.budgets import ImageBudget, VideoBudget
from qvltrain.vision.sampling import fps_from_timestamps
from qvltrain.vision.tokens import image_grid, video_grid


@dataclass
class TokenSettings:
    """What meta.num_tokens depends on; stored in `<prefix>.recipe.json` beside the shards."""

    image_budget: ImageBudget
    """Pixel budget of images (the training dataset config must use the same one)."""
    video_budget: VideoBudget | None = None
    """Frame and pixel budget of videos; required when samples hold videos."""
    template: str = "chatml"
    """Template meta.num_tokens is counted for; num_tokens_by_template holds every template."""
    tokenizer: str | None = None
    """Local tokenizer folder; None is the bundled tiny tokenizer (demo and tests)."""

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"TokenSettings.template must be one of {TEMPLATES}, got {self.template!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TokenSettings:
        video = values.get("video_budget")
        return cls(
            image_budget=ImageBudget(**values["image_budget"]),
            video_budget=VideoBudget(**video) if video else None,
            template=values.get("template", "chatml"),
            tokenizer=values.get("tokenizer"),
        )


@dataclass(frozen=True)
class TokenCount:
    """Counts written into meta."""

    num_tokens_by_template: dict[str, int]
    """Rendered length under each template (RenderConfig defaults otherwise)."""
    num_visual_tokens: int
    """Tokens of visual blocks, vision_start and vision_end included (same in every template)."""
    num_patches: int
    """ViT patches of all visual items (t * h * w of each grid): the packer's pixel budget."""


class TokenCounter:
    """Counts tokens of schema samples; loads the tokenizer on first use (once per worker process)."""

    def __init__(self, settings: TokenSettings) -> None:
        self.settings = settings
        self._info: TokenizerInfo | None = None
        self._render_configs = {template: RenderConfig(template=template) for template in TEMPLATES}

    @property
    def info(self) -> TokenizerInfo:
        if self._info is None:
            self._info = TokenizerInfo.from_tokenizer(load_tokenizer(self.settings.tokenizer))
        return self._info

    def visual_grids(self, sample: dict, name: str) -> list[tuple[int, int, int]]:
        """grid_thw of each visual item in order, from meta sizes and frame timestamps."""
        meta = sample["meta"]
        image_sizes, video_sizes = meta.get("image_sizes", []), meta.get("video_sizes", [])
        grids, num_images, num_videos = [], 0, 0
        for item in visual_items(sample):
            if item["type"] == "image":
                width, height = image_sizes[num_images]
                grids.append(image_grid(height, width, self.settings.image_budget, name))
                num_images += 1
                continue
            if self.settings.video_budget is None:
                raise ValueError(f"{name}: the sample holds a video but no video budget was given")
            if "frames" not in item:
                raise ValueError(f"{name}: counting tokens needs pre-extracted frames, not an encoded video")
            width, height = video_sizes[num_videos]
            fps = fps_from_timestamps(item["timestamps"], name)
            grids.append(
                video_grid(len(item["frames"]), fps, height, width, self.settings.video_budget, name)
            )
            num_videos += 1
        return grids

    def count(self, sample: dict, name: str = "<sample>") -> TokenCount:
        """Render the sample under every template; raises SkipSample / VisualInputError like the loader."""
        grids = self.visual_grids(sample, name)
        image_sizes = [tuple(size) for size in sample["meta"].get("image_sizes", [])]
        lengths, num_visual = {}, 0
        for template, config in self._render_configs.items():
            rendered = render_sample(sample["messages"], grids, image_sizes, self.info, config)
            lengths[template] = len(rendered)
            num_visual = rendered.num_visual_tokens
        return TokenCount(
            num_tokens_by_template=lengths,
            num_visual_tokens=num_visual,
            num_patches=sum(t * h * w for t, h, w in grids),
        )

    def annotate(self, sample: dict, name: str = "<sample>") -> dict:
        """The sample with meta.num_tokens (for settings.template) and the other counts filled in."""
        counted = self.count(sample, name)
        meta = sample["meta"]
        meta["num_tokens"] = counted.num_tokens_by_template[self.settings.template]
        meta["num_tokens_by_template"] = counted.num_tokens_by_template
        meta["num_visual_tokens"] = counted.num_visual_tokens
        meta["num_patches"] = counted.num_patches
        return sample


def recipe_file_path(shard: str) -> str:
    """`<folder>/<prefix>.recipe.json` for a shard `<folder>/<prefix>-NNNNNN.tar`."""
    folder, base = os.path.split(shard)
    return os.path.join(folder, f"{base.rsplit('-', 1)[0]}.recipe.json")


class TokenChecker:
    """Recomputes meta.num_tokens of validated samples; a mismatch means stale or foreign settings."""

    def __init__(self, counters_by_recipe: dict[str, TokenCounter]) -> None:
        self.counters_by_recipe = counters_by_recipe

    @classmethod
    def from_recipe_files(cls, shards: list[str]) -> TokenChecker:
        counters = {}
        for path in sorted({recipe_file_path(shard) for shard in shards}):
            if not os.path.exists(path):
                raise ValueError(f"--check-tokens needs {path} (written by the recipe) beside the shards")
            with open(path) as recipe_file:
                recipe = json.load(recipe_file)
            counters[path] = TokenCounter(TokenSettings.from_dict(recipe["token_settings"]))
        return cls(counters)

    def __call__(self, sample: dict, shard: str) -> str | None:
        counter = self.counters_by_recipe[recipe_file_path(shard)]
        expected = counter.count(sample).num_tokens_by_template[counter.settings.template]
        if expected != sample["meta"]["num_tokens"]:
            return (
                f"meta.num_tokens is {sample['meta']['num_tokens']} but the recipe's settings give {expected}"
            )
        return None
