"""Each converter round-trips its fixture: shards validate, render with our renderers, the rendered text
holds the source's question, answer and box, bad records are reported and skipped, and a second run
writes byte-identical shards."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import webdataset as wds

from qvltrain.data.config import DatasetConfig
from qvltrain.data.decode import SampleDecoder
from qvltrain.data.shards import expand_shards
from qvltrain.shards.check import check_shards
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer
from qvltrain.vision.budgets import ImageBudget, VideoBudget
from tests.conftest import REPO_ROOT, deadline_s
from tests.recipes import fixtures

IMAGE_BUDGET = ["--image-budget", "3136:50176"]


def convert(module: str, args: list[str], out: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        f"data_recipes.{module}",
        *args,
        "--out",
        str(out),
        "--prefix",
        "train",
        "--no-progress",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=deadline_s(300))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def rendered_texts(out: Path) -> list[str]:
    tokenizer = load_tokenizer(None)
    dataset = DatasetConfig(
        name="fixture",
        shards=str(out),
        image_budget=ImageBudget(3136, 50176),
        video_budget=VideoBudget(total_pixels=16 * 50176, min_pixels=3136, max_pixels=50176),
        template="chatml",
    )
    decoder = SampleDecoder(dataset, "chatml", TokenizerInfo.from_tokenizer(tokenizer), 1 << 16)
    return [
        tokenizer.decode(decoder(sample).input_ids, skip_special_tokens=False)
        for sample in wds.WebDataset(expand_shards(str(out)), shardshuffle=False, empty_check=False)
    ]


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


CASES = {
    "llava": (fixtures.llava_fixture, lambda p, r: ["--json", str(p), "--images", str(r / "images"), *IMAGE_BUDGET],
              ["What animal is this?", "A cat sitting on a mat.", "Which is taller?", "The dog picture."], "missing_file"),
    "coco_captions": (fixtures.coco_fixture, lambda p, r: ["--json", str(p), "--images", str(r / "images"), *IMAGE_BUDGET],
                      ["A red kite in the sky.", "A long narrow banner."], None),
    "refcoco": (fixtures.refcoco_fixture, lambda p, r: ["--json", str(p), "--images", str(r / "images"), *IMAGE_BUDGET],
                ["the man on the left", "<|box_start|>(50,133),(300,533)<|box_end|>"], None),
    "video_qa": (fixtures.video_fixture, lambda p, r: ["--json", str(p), "--videos", str(r / "videos"), *IMAGE_BUDGET,
                                                       "--video-total-pixels", str(16 * 50176)],
                 ["Which way does the camera pan?", "To the right.", "Describe the clip."], "missing_file"),
    "text_jsonl": (fixtures.text_fixture, lambda p, r: ["--jsonl", str(p)],
                   ["The quick brown fox jumps over the lazy dog.", "What is 2+2?"], "invalid_json"),
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(CASES))
def test_converter_round_trip(module: str, tmp_path: Path) -> None:
    make_fixture, make_args, expected_texts, expected_skip = CASES[module]
    source = make_fixture(tmp_path / "source")
    result = convert(module, make_args(source, tmp_path / "source"), tmp_path / "out")
    report = check_shards(str(tmp_path / "out"))
    assert report.num_samples > 0 and not report.errors, report
    texts = "\n".join(rendered_texts(tmp_path / "out"))
    for expected in expected_texts:
        assert expected in texts, (expected, texts[:2000])
    if expected_skip:
        assert expected_skip in result.stdout + result.stderr
    convert(module, make_args(source, tmp_path / "source"), tmp_path / "again")
    assert digests(tmp_path / "again") == digests(tmp_path / "out")
