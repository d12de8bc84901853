"""The shard check catches each schema violation; shard stats report; worker count never changes bytes."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image

from apps import check_shards, shard_stats
from data_recipes.digits import main as digits_main
from qvltrain.shards.check import check_shards as check
from qvltrain.shards.writer import ShardWriter


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def grounding_sample(bbox: list[float], size: list[int], image_file: str = "0.png") -> dict:
    return {
        "task": "grounding",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image", "file": image_file}, {"type": "ref", "text": "it"}],
            },
            {"role": "assistant", "content": [{"type": "box", "bbox": bbox}]},
        ],
        "meta": {"source": "test", "image_sizes": [size], "num_tokens": 20},
    }


def test_validator_reports_each_problem(tmp_path: Path) -> None:
    with ShardWriter(str(tmp_path), "train", max_samples=10) as writer:
        writer.write("good", grounding_sample([1, 2, 30, 40], [64, 48]), {"0.png": png(64, 48)})
        writer.write("flipped", grounding_sample([30, 2, 1, 40], [64, 48]), {"0.png": png(64, 48)})
        writer.write("outside", grounding_sample([1, 2, 70, 40], [64, 48]), {"0.png": png(64, 48)})
        writer.write("wrongsize", grounding_sample([1, 2, 30, 40], [64, 48]), {"0.png": png(48, 64)})
        writer.write("missing", grounding_sample([1, 2, 30, 40], [64, 48], "1.png"), {"0.png": png(64, 48)})
    report = check(str(tmp_path))
    assert report.num_samples == 5 and not report.ok
    text = "\n".join(report.errors)
    for key, words in {
        "flipped": "x1 < x2", "outside": "outside", "wrongsize": "meta says", "missing": "missing from the shard",
    }.items():  # fmt: skip
        assert any(line.startswith(f"train-000000.tar:{key}:") and words in line for line in report.errors), (
            text
        )
    assert not any(":good:" in line for line in report.errors)
    assert check_shards.main([str(tmp_path)]) == 1


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.tar"))
    }


def test_worker_count_never_changes_bytes_and_inspect_reads_the_shards(tmp_path: Path) -> None:
    common = ["--scale", "0.004", "--tasks", "grounding,video", "--no-progress"]
    digits_main(["--out", str(tmp_path / "one"), "--workers", "1", *common])
    digits_main(["--out", str(tmp_path / "two"), "--workers", "2", *common])
    assert digests(tmp_path / "one") == digests(tmp_path / "two") != {}
    assert check_shards.main([str(tmp_path / "one/video/train"), "--check-tokens"]) == 0
    result = shard_stats.main([str(tmp_path / "one/grounding/train"), "--seq-len", "256", "--json"])
    assert result["tasks"] == {"grounding": result["num_samples"]} and result["num_samples"] > 0
    assert 0 < result["packing"]["efficiency"] <= 1 and 0 < result["visual_share"] < 1
