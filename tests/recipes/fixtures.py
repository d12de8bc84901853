"""Tiny inputs in each layout the converters read, made by code; each holds good and bad records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.vision.media import smooth_pixels, write_video


def write_image(path: Path, width: int, height: int, seed: int, fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(smooth_pixels(height, width, seed)).save(path, fmt)


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def llava_fixture(root: Path) -> Path:
    write_image(root / "images/cat.jpg", 120, 90, 1)
    write_image(root / "images/sub/dog.png", 64, 200, 2, fmt="PNG")
    records = [
        {"id": "a", "image": "cat.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat animal is this?"},
            {"from": "gpt", "value": "A cat sitting on a mat."}]},
        {"id": "b", "image": ["cat.jpg", "sub/dog.png"], "conversations": [
            {"from": "human", "value": "Compare them."}, {"from": "gpt", "value": "Left is a cat, right a dog."},
            {"from": "human", "value": "Which is taller?"}, {"from": "gpt", "value": "The dog picture."}]},
        {"id": "c", "conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi!"}]},
        {"id": "d", "image": "missing.jpg", "conversations": [
            {"from": "human", "value": "<image>Q"}, {"from": "gpt", "value": "A"}]},
        {"id": "e", "image": "cat.jpg", "conversations": [
            {"from": "human", "value": "<image><image>Q"}, {"from": "gpt", "value": "A"}]},
    ]  # fmt: skip
    return write_json(root / "llava.json", records)


def coco_fixture(root: Path) -> Path:
    write_image(root / "images/1.jpg", 100, 80, 3)
    write_image(root / "images/2.jpg", 300, 40, 4)
    data = {
        "images": [{"id": 1, "file_name": "1.jpg"}, {"id": 2, "file_name": "2.jpg"}],
        "annotations": [
            {"id": 10, "image_id": 1, "caption": "A red kite in the sky."},
            {"id": 11, "image_id": 1, "caption": "Kite flying over a beach."},
            {"id": 12, "image_id": 2, "caption": "A long narrow banner."},
            {"id": 13, "image_id": 99, "caption": "No such image."},
        ],
    }
    return write_json(root / "captions.json", data)


def refcoco_fixture(root: Path) -> Path:
    write_image(root / "images/street.jpg", 200, 150, 5)
    refs = [
        {"ref_id": 1, "image": "street.jpg", "bbox": [10, 20, 50, 60], "split": "train",
         "sentences": [{"sent": "the man on the left"}, {"sent": "left guy"}]},
        {"ref_id": 2, "image": "street.jpg", "bbox": [120.5, 30, 79.5, 100], "split": "train",
         "sentences": ["red car"]},
        {"ref_id": 3, "image": "street.jpg", "bbox": [150, 30, 100, 100], "split": "train",
         "sentences": ["outside box"]},
        {"ref_id": 4, "image": "street.jpg", "bbox": [0, 0, 5, 5], "split": "val", "sentences": ["val only"]},
    ]  # fmt: skip
    return write_json(root / "refs.json", refs)


def video_fixture(root: Path) -> Path:
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "videos/pan.mp4").write_bytes(write_video(20, fps=10, size=(48, 64), seed=1))
    # Width 56, not 48: decord 0.6 fails on some narrow mpeg4 widths (16, 24, 48, 72).
    (root / "videos/long.mp4").write_bytes(write_video(40, fps=10, size=(64, 56), seed=2))
    records = [
        {"id": "v1", "video": "pan.mp4", "question": "Which way does the camera pan?", "answer": "To the right."},
        {"id": "v2", "video": "long.mp4", "conversations": [
            {"from": "human", "value": "<video>\nDescribe the clip."}, {"from": "gpt", "value": "Moving colours."}]},
        {"id": "v3", "video": "nothing.mp4", "question": "Q?", "answer": "A."},
    ]  # fmt: skip
    return write_json(root / "video_qa.json", records)


def text_fixture(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"id": 1, "text": "The quick brown fox jumps over the lazy dog."}),
        "{not json",
        json.dumps(
            {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]}
        ),
        "",
        json.dumps({"text": ""}),
    ]
    path = root / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def solid_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """[n, H, W, 3] uint8 frames of a bright square moving right."""
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    for index in range(num_frames):
        frames[index, 10:20, 2 * index : 2 * index + 10] = 255
    return frames
