"""render_sample: a decoded sample's messages -> RenderedSample (ids, labels, modality types, positions).

    info = TokenizerInfo.from_tokenizer(load_tokenizer(path))   # once per process
    sample = render_sample(messages, visual_grids, image_sizes, info, RenderConfig(template="chatml"))

The renderers never build the template string: text runs are tokenized between special tokens and
the special / pad ids spliced in by id (see builder.py for why this is exact).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from qvltrain.text.builder import TokenSequenceBuilder
from qvltrain.text.chatml import render_chatml
from qvltrain.text.config import RenderConfig
from qvltrain.text.content import ContentRenderer
from qvltrain.text.errors import SkipSample
from qvltrain.text.plain import render_plain
from qvltrain.text.positions import sample_position_ids
from qvltrain.text.sample import IGNORE_INDEX, RenderedSample
from qvltrain.text.tokenizer import TokenizerInfo
from qvltrain.text.truncate import truncate_at_turn_boundary

RENDERERS = {"chatml": render_chatml, "plain": render_plain}


def _used_seconds(
    config: RenderConfig, visual_kinds: Sequence[str], video_second_per_grid: Sequence[float] | None
) -> list[float] | None:
    """Seconds per tube of the videos the messages hold, when positions follow absolute time."""
    if config.tokens_per_second is None:
        return None
    num_videos = sum(kind == "video" for kind in visual_kinds)
    seconds = list(video_second_per_grid or [])
    if len(seconds) < num_videos:
        raise ValueError(
            f"{num_videos} video item(s) but {len(seconds)} video_second_per_grid value(s): absolute-time "
            "positions (tokens_per_second) need the seconds per tube of every video"
        )
    return seconds[:num_videos]


def render_sample(
    messages: list[dict],
    visual_grids: Sequence[tuple[int, int, int]],
    image_sizes: Sequence[tuple[int, int]],
    tokenizer_info: TokenizerInfo,
    config: RenderConfig,
    video_second_per_grid: Sequence[float] | None = None,
) -> RenderedSample:
    """Render one sample; raises SkipSample (counted by `.reason`) for data it cannot train on.

    visual_grids: grid_thw BEFORE merging, one per image/video item in order of appearance.
    image_sizes: original (width, height) of each image item, in order (for boxes).
    video_second_per_grid: seconds per tube of each video item, in order (needed when
    `config.tokens_per_second` is set: absolute-time positions).
    """
    builder = TokenSequenceBuilder(tokenizer_info)
    content = ContentRenderer(
        builder=builder,
        info=tokenizer_info,
        config=config,
        visual_grids=[tuple(int(value) for value in grid) for grid in visual_grids],
        image_sizes=list(image_sizes),
    )
    RENDERERS[config.template](messages, content)
    content.check_all_grids_used()
    built = builder.finish()

    trained = built.trained
    if trained.size:
        trained[0] = False  # never predicted (no previous token); keeps packs from training across samples
    input_ids = torch.from_numpy(built.ids)  # [L] int64
    labels = torch.from_numpy(np.where(trained, built.ids, IGNORE_INDEX))  # [L] int64
    mm_token_type_ids = torch.from_numpy(built.mm_types)  # [L] int64
    visual_grids_used = tuple(content.visual_grids[: len(content.visual_kinds)])
    sample = RenderedSample(
        input_ids=input_ids,
        labels=labels,
        mm_token_type_ids=mm_token_type_ids,
        position_ids=sample_position_ids(
            built.mm_types,
            [
                grid
                for kind, grid in zip(content.visual_kinds, visual_grids_used, strict=True)
                if kind == "image"
            ],
            [
                grid
                for kind, grid in zip(content.visual_kinds, visual_grids_used, strict=True)
                if kind == "video"
            ],
            config.spatial_merge_size,
            config.position_rule,
            tokens_per_second=config.tokens_per_second,
            video_second_per_grid=_used_seconds(config, content.visual_kinds, video_second_per_grid),
        ),
        visual_kinds=tuple(content.visual_kinds),
        visual_grids=visual_grids_used,
        visual_spans=tuple(built.visual_spans),
        turn_ends=tuple(built.turn_ends),
        num_clipped_boxes=content.num_clipped_boxes,
    )
    if not trained.any():  # == sample.num_loss_tokens == 0, without a tensor op
        raise SkipSample(
            "no_trained_tokens", f"{config.template} rendering of {len(sample)} tokens trains nothing"
        )
    if config.max_length is not None:
        sample = truncate_at_turn_boundary(sample, config.max_length)
    return sample
