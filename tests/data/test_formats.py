"""Formats users bring (ShareGPT / ms-swift / LLaMA-Factory `messages` + `images`/`videos` with tags,
LLaVA `conversations`) and JSON/JSONL dataset files read on the fly through the same pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from qvltrain.data.config import DataConfig, DatasetConfig
from qvltrain.data.formats import to_schema
from qvltrain.data.loader import TrainBatches
from qvltrain.shards.check import check_shards
from qvltrain.text.errors import SkipSample
from qvltrain.text.tokenizer import load_tokenizer
from tests.data.mixed_shards import IMAGE_BUDGET, VIDEO_BUDGET, jpeg
from tests.data.test_loader import _saved, same_batches
from tests.vision.media import write_video


def test_sharegpt_messages_with_tags_become_items() -> None:
    record = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "<image>Compare with <image> and <video>."},
            {"role": "assistant", "content": "Same."},
        ],
        "images": ["a.jpg", {"path": "b.jpg"}],
        "videos": ["c.mp4"],
    }
    assert to_schema(record) == {
        "task": "chat",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "image", "file": "a.jpg"},
                    {"type": "text", "text": "Compare with "},
                    {"type": "image", "file": "b.jpg"},
                    {"type": "text", "text": " and "},
                    {"type": "video", "file": "c.mp4"},
                    {"type": "text", "text": "."},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Same."}]},
        ],
    }


def test_llava_conversations_and_our_schema() -> None:
    llava = {
        "id": "0001",
        "image": "coco/1.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is it?"},
            {"from": "gpt", "value": "A cat."},
        ],
    }
    converted = to_schema(llava)
    assert [m["role"] for m in converted["messages"]] == ["user", "assistant"]
    assert converted["messages"][0]["content"][:2] == [
        {"type": "image", "file": "coco/1.jpg"},
        {"type": "text", "text": "\nWhat is it?"},
    ]
    ours = {
        "task": "caption",
        "messages": [{"role": "user", "content": [{"type": "image", "file": "0.jpg"}]}],
    }
    assert to_schema(ours) is ours
    text_only = {"messages": [{"role": "user", "content": "hi <image> literally"}]}
    assert to_schema(text_only) is text_only  # no media listed: our schema's plain-string content
    untagged = to_schema(
        {"messages": [{"role": "user", "content": "What?"}], "images": ["a.jpg"], "videos": ["v.mp4"]}
    )
    assert [item.get("file") for item in untagged["messages"][0]["content"]] == ["a.jpg", "v.mp4", None]
    with pytest.raises(SkipSample, match="2 <image> tag"):
        to_schema({"messages": [{"role": "user", "content": "<image><image>"}], "images": ["a.jpg"]})


def write_records(folder: Path) -> Path:
    """A JSONL dataset with media under folder/media, good records and every kind of bad line."""
    media = folder / "media"
    (media / "img").mkdir(parents=True)
    for index in range(3):
        (media / "img" / f"{index}.jpg").write_bytes(jpeg(48 + 8 * index, 64, index))
    (media / "clip.mp4").write_bytes(write_video(6, fps=4, size=(56, 56), seed=1))
    lines = [
        {"messages": [{"role": "user", "content": "<image>What is this?"}, {"role": "assistant", "content": "A shape."}], "images": ["img/0.jpg"]},
        {"conversations": [{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "Colors."}], "image": "img/1.jpg"},
        "this line is not JSON",
        {"messages": [{"role": "user", "content": "<video>What happens?"}, {"role": "assistant", "content": "It moves."}], "videos": ["clip.mp4"]},
        {"messages": [{"role": "user", "content": "<image><image>Two?"}, {"role": "assistant", "content": "No."}], "images": ["img/2.jpg"]},
        {"messages": [{"role": "user", "content": "<image>Where?"}, {"role": "assistant", "content": "Gone."}], "images": ["img/missing.jpg"]},
        {"messages": [{"role": "user", "content": "Just text."}, {"role": "assistant", "content": "Yes, text."}]},
        {"messages": [{"role": "user", "content": "<image>And this?"}, {"role": "assistant", "content": "Another."}], "images": ["img/2.jpg"]},
    ]  # fmt: skip
    path = folder / "train.jsonl"
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text.replace("\n", "\n\n", 1) + "\n")  # a blank line 2: not a sample
    return path


def records_config(path: Path, media_root: Path | None, **overrides) -> DataConfig:
    dataset = DatasetConfig(
        name="sft",
        shards=str(path),
        image_budget=IMAGE_BUDGET,
        video_budget=VIDEO_BUDGET,
        media_root=None if media_root is None else str(media_root),
    )
    values = {"seq_len": 256, "max_patches": 512, "pack_window": 4, "shuffle_buffer": 2, **overrides}
    return DataConfig(train=[dataset], **values)


def test_jsonl_dataset_trains_skips_bad_lines_and_resumes_exactly(tmp_path: Path) -> None:
    path = write_records(tmp_path)
    tokenizer = load_tokenizer(None)
    data = records_config(path, tmp_path / "media")
    batches = TrainBatches(data, "chatml", tokenizer, 0, 1)
    packs = [next(batches) for _ in range(6)]
    keys = {key for pack in packs for key in pack.keys}
    assert keys == {"line1", "line3", "line5", "line8", "line9"}  # physical line numbers
    assert sum(int(p.temporal_repeat.eq(1).sum()) for p in packs if p.grid_thw is not None) >= 1  # the video
    skips = batches.skips
    assert skips["invalid_json"] >= 1 and skips["media_tag_mismatch"] >= 1 and skips["missing_media"] >= 1
    state = batches.state_dict()
    recent = state["readers"][0]["skips"]["recent"]
    assert ("invalid_json", "line4", str(path)) in [tuple(r) for r in recent]

    reference = TrainBatches(data, "chatml", tokenizer, 0, 1)
    expected = [next(reference) for _ in range(10)]
    resumed = TrainBatches(data, "chatml", tokenizer, 0, 1)
    resumed.load_state_dict(torch.load(_saved(state), weights_only=False))
    same_batches(packs + [next(resumed) for _ in range(4)], expected)

    report = check_shards(str(path), media_root=str(tmp_path / "media"))
    errors = "\n".join(report.errors)
    assert report.num_samples == 6 and report.num_errors == 3, errors
    assert "train.jsonl:line4: not JSON" in errors
    assert "line6: media_tag_mismatch" in errors and "img/missing.jpg" in errors


def test_json_list_with_media_beside_it(tmp_path: Path) -> None:
    (tmp_path / "0.jpg").write_bytes(jpeg(56, 56, 3))
    record = {
        "messages": [
            {"role": "user", "content": "<image>Name it."},
            {"role": "assistant", "content": "A blob."},
        ]
    }
    (tmp_path / "data.json").write_text(json.dumps([{**record, "images": ["0.jpg"]}] * 2))
    batches = TrainBatches(records_config(tmp_path / "data.json", None), "chatml", load_tokenizer(None), 0, 2)
    assert next(batches).keys and not batches.skips
