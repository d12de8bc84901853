"""The digits recipe: deterministic, split by source image, valid shards the loader renders."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import webdataset as wds

from data_recipes.digits import main
from data_recipes.digits_source import split_indices
from data_recipes.digits_tasks import draw_spec
from qvltrain.data.shards import expand_shards
from qvltrain.shards.check import check_shards


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.tar"))
    }


def test_recipe_writes_valid_deterministic_shards(tmp_path: Path) -> None:
    args = ["--scale", "0.01", "--workers", "1", "--no-progress"]
    main(["--out", str(tmp_path / "a"), *args])
    main(["--out", str(tmp_path / "b"), *args])
    assert digests(tmp_path / "a") == digests(tmp_path / "b") != {}
    for task in ("caption", "grounding", "chat", "video"):
        for split in ("train", "validation"):
            report = check_shards(str(tmp_path / "a" / task / split))
            assert report.ok and report.num_samples >= 2, (task, split, report)
    video = next(
        iter(
            wds.WebDataset(
                expand_shards(str(tmp_path / "a/video/train")), shardshuffle=False, empty_check=False
            )
        )
    )
    frames = [name for name in video if name.endswith(".jpg")]
    assert len(frames) == 8 and b'"timestamps"' in video["json"]


def test_num_tokens_equal_the_rendered_length(tmp_path: Path) -> None:
    """The packer plans from meta.num_tokens: it must be the length the loader renders."""
    import json

    from data_recipes.digits_tasks import IMAGE_BUDGET, VIDEO_BUDGET
    from qvltrain.data.config import DatasetConfig
    from qvltrain.data.decode import SampleDecoder
    from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer

    main(["--out", str(tmp_path), "--scale", "0.005", "--workers", "1", "--no-progress"])
    info = TokenizerInfo.from_tokenizer(load_tokenizer(None))
    for task in ("caption", "grounding", "chat", "video"):
        for template in ("chatml", "plain"):
            dataset = DatasetConfig(
                name=task, shards=str(tmp_path / task / "train"), image_budget=IMAGE_BUDGET,
                video_budget=VIDEO_BUDGET, template=template,
            )  # fmt: skip
            decoder = SampleDecoder(dataset, template, info, 1 << 16)
            for sample in wds.WebDataset(
                expand_shards(dataset.shards), shardshuffle=False, empty_check=False
            ):
                meta = json.loads(sample["json"])["meta"]
                assert len(decoder(sample).input_ids) == meta["num_tokens_by_template"][template], (
                    task,
                    template,
                )


def test_splits_never_share_a_source_digit() -> None:
    splits = split_indices(0.2, 0)
    assert not set(splits["train"]) & set(splits["validation"])
    rng = random.Random(0)
    for task in ("caption", "video", "grounding", "chat"):
        for _ in range(50):
            spec = draw_spec(task, rng, splits["validation"])
            used = [spec["digit"]] if "digit" in spec else [p[0] for p in spec["placements"]]
            assert np.isin(used, splits["validation"]).all()


def test_grounding_canvases_hold_one_digit_and_chat_canvases_up_to_three() -> None:
    pool = split_indices(0.2, 0)["train"]
    rng = random.Random(1)
    grounding = [draw_spec("grounding", rng, pool) for _ in range(100)]
    assert all(len(spec["placements"]) == 1 and spec["asked"] == 0 for spec in grounding)
    chat_sizes = {len(draw_spec("chat", rng, pool)["placements"]) for _ in range(200)}
    assert chat_sizes == {1, 2, 3}


def test_caption_cards_all_resize_to_one_window_of_four_tokens() -> None:
    from data_recipes.digits_tasks import IMAGE_BUDGET
    from qvltrain.vision.resize import smart_resize

    pool = split_indices(0.2, 0)["train"]
    rng = random.Random(2)
    sides = {draw_spec("caption", rng, pool)["side"] for _ in range(2000)}
    assert min(sides) == 28 and max(sides) == 56 and 38 not in sides
    budget = {"min_pixels": IMAGE_BUDGET.min_pixels, "max_pixels": IMAGE_BUDGET.max_pixels}
    assert {smart_resize(side, side, **budget) for side in sides} == {(56, 56)}
