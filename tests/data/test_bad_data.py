"""Invariant 7: every kind of bad sample is a counted skip (reason, key, shard), the same on replay."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qvltrain.data.config import DataConfig
from qvltrain.data.loader import TrainBatches
from qvltrain.data.skips import TooManyFailures
from qvltrain.shards.writer import ShardWriter
from qvltrain.text.tokenizer import load_tokenizer
from tests.data.mixed_shards import dataset, jpeg, make_sample

GOOD_PER_SHARD = 6


def good_sample(index: int) -> tuple[dict, dict]:
    messages, media, sizes = make_sample(("text", "image")[index % 2], random.Random(index), index)
    return {"task": "chat", "messages": messages, "meta": {"image_sizes": sizes, "num_tokens": 40}}, media


def image_record(file: str = "0.jpg", **extra) -> dict:
    messages = [
        {"role": "user", "content": [{"type": "image", "file": file}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a shape"}]},
    ]
    return {
        "task": "caption",
        "messages": messages,
        "meta": {"image_sizes": [[64, 64]], "num_tokens": 30},
        **extra,
    }


def bad_samples() -> list[tuple[str, dict | bytes, dict]]:
    """(key, KEY.json as a dict or raw bytes, media) per bad case; the key names the expected reason."""
    picture = jpeg(64, 64, 1)
    video = image_record()
    video["messages"][0]["content"] = [{"type": "video", "file": "0.mp4"}]
    huge = image_record()  # 10 images of 16 + 2 tokens: more than seq_len 128 of visual tokens alone
    huge["messages"][0]["content"] = [{"type": "image", "file": f"{i}.jpg"} for i in range(10)]
    huge["meta"]["image_sizes"] = [[112, 112]] * 10
    return [
        ("truncated_image", image_record(), {"0.jpg": picture[: len(picture) // 2]}),
        ("not_an_image", image_record(), {"0.jpg": b"this is no jpeg at all"}),
        ("invalid_json", b'{"task": "caption", "messages": [', {}),
        ("missing_media", image_record("1.jpg"), {"0.jpg": picture}),
        ("unknown_task", image_record(task="painting"), {"0.jpg": picture}),
        ("corrupt_video", video, {"0.mp4": b"\x00\x00\x00\x18ftypmp42 not really a video"}),
        ("visual_tokens_exceed_length", huge, {f"{i}.jpg": jpeg(112, 112, i) for i in range(10)}),
    ]


def write_shards(folder: Path, truncate_last: bool) -> list[str]:
    """Two shards of good samples with the bad ones between; the last shard ends mid-member."""
    folder.mkdir(parents=True, exist_ok=True)
    with ShardWriter(str(folder), "bad", max_samples=GOOD_PER_SHARD + 7) as writer:
        for shard in range(2):
            bad = bad_samples()
            for index in range(GOOD_PER_SHARD):
                record, media = good_sample(shard * 100 + index)
                writer.write(f"good{shard}x{index}", record, media)
                if index < len(bad) and shard == 0:
                    key, record, media = bad[index]
                    if isinstance(record, bytes):
                        writer.write(f"{key}", {}, media)
                        continue
                    writer.write(f"{key}", record, media)
            if shard == 0:
                writer.write("visual_tokens_exceed_length", *bad[-1][1:])
    paths = sorted(str(p) for p in folder.glob("*.tar"))
    _patch_invalid_json(paths[0])
    if truncate_last:
        data = Path(paths[-1]).read_bytes()
        Path(paths[-1]).write_bytes(data[: int(len(data) * 0.6)])
    return paths


def _patch_invalid_json(path: str) -> None:
    """Replace the invalid_json sample's `{}` body by broken JSON of the same length."""
    data = bytearray(Path(path).read_bytes())
    marker = data.find(b"invalid_json.json")
    body = data.find(b"{}", marker + 512)
    data[body : body + 2] = b"{["
    Path(path).write_bytes(bytes(data))


def data_config(folder: Path, **overrides) -> DataConfig:
    values = {"seq_len": 128, "max_patches": 512, "pack_window": 8, "shuffle_buffer": 1, **overrides}
    return DataConfig(train=[dataset("bad", folder)], **values)


def run(folder: Path, num_packs: int, **overrides):
    batches = TrainBatches(data_config(folder, **overrides), "plain", load_tokenizer(None), 0, 1)
    packs = [next(batches) for _ in range(num_packs)]
    return batches, packs


def test_every_bad_case_is_counted_with_key_and_shard(tmp_path: Path) -> None:
    shards = write_shards(tmp_path, truncate_last=True)
    batches, packs = run(tmp_path, 12)
    keys = {key for pack in packs for key in pack.keys}
    assert keys and all(key.startswith("good") for key in keys)
    skips = batches.skips
    for reason, *_ in bad_samples():
        assert skips[reason] >= 1, (reason, dict(skips))
    assert skips["truncated_tar"] >= 1
    recent = batches.state_dict()["readers"][0]["skips"]["recent"]
    assert any(reason == "truncated_tar" and shard == shards[-1] for reason, _, shard in recent)
    assert any(reason == "unknown_task" and key == "unknown_task" for reason, key, _ in recent)


def test_skips_are_identical_on_replay(tmp_path: Path) -> None:
    write_shards(tmp_path, truncate_last=True)
    first, packs_a = run(tmp_path, 10)
    second, packs_b = run(tmp_path, 10)
    assert [p.keys for p in packs_a] == [p.keys for p in packs_b]
    assert first.state_dict()["readers"][0]["skips"] == second.state_dict()["readers"][0]["skips"]


def test_too_many_patches_is_a_skip(tmp_path: Path) -> None:
    write_shards(tmp_path, truncate_last=False)
    batches, _ = run(tmp_path, 4, max_patches=8, seq_len=2048)
    assert batches.skips["too_many_patches"] >= 1


def test_consecutive_failures_stop_with_a_clear_error(tmp_path: Path) -> None:
    with ShardWriter(str(tmp_path), "broken", max_samples=1000) as writer:
        for index in range(30):
            writer.write(f"broken{index}", image_record(), {"0.jpg": b"nope"})
    batches = TrainBatches(
        data_config(tmp_path, max_consecutive_failures=20), "plain", load_tokenizer(None), 0, 1
    )
    with pytest.raises(TooManyFailures, match="20 consecutive bad samples at the decode stage.*not_an_image"):
        for _ in range(10):  # packs of 8 planned samples each, all failing
            next(batches)


def test_sample_without_token_count_is_decoded_to_plan(tmp_path: Path) -> None:
    with ShardWriter(str(tmp_path), "nometa", max_samples=1000) as writer:
        for index in range(12):
            record, media = good_sample(index)
            del record["meta"]["num_tokens"]
            writer.write(f"s{index}", record, media)
    batches, packs = run(tmp_path, 2)
    assert sum(len(p.keys) for p in packs) >= 4 and not batches.skips
    assert json.dumps(batches.state_dict())  # the state stays plain data


def exif_rotated_jpeg(width: int, height: int, orientation: int) -> bytes:
    """A JPEG stored at width x height whose EXIF tag tells viewers to rotate it."""
    import io

    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 30, 200)).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def grounding_record(size: list[int]) -> dict:
    record = image_record()
    record["task"] = "grounding"
    record["messages"][1]["content"] = [
        {"type": "ref", "text": "the shape"},
        {"type": "box", "bbox": [4, 4, 40, 30], "image": 0},
    ]
    record["meta"]["image_sizes"] = [size]
    return record


@pytest.mark.parametrize(
    ("stored", "meta_size", "expected"),
    [
        (lambda: jpeg(48, 64, 2), [64, 48], None),
        (lambda: jpeg(48, 64, 2), [64, 64], "decodes to 64x48 .* meta.image_sizes\\[0\\] is \\[64, 64\\]"),
        # Stored 80x48 with orientation 6 (rotate 90): decoded (and boxed) upright as 48x80.
        (lambda: exif_rotated_jpeg(80, 48, 6), [48, 80], None),
        (lambda: exif_rotated_jpeg(80, 48, 6), [80, 48], "decodes to 48x80 \\(width x height, after EXIF"),
    ],
)
def test_boxes_are_checked_against_the_decoded_image_size(stored, meta_size, expected) -> None:
    from qvltrain.data.decode import BadSample, SampleDecoder
    from qvltrain.text.tokenizer import TokenizerInfo

    decoder = SampleDecoder(
        dataset("boxes", "unused"), "chatml", TokenizerInfo.from_tokenizer(load_tokenizer(None)), 4096
    )
    raw = {"__key__": "k1", "__url__": "s.tar", "json": json.dumps(grounding_record(meta_size)).encode()}
    raw["0.jpg"] = stored()
    if expected is None:
        assert decoder(raw).num_patches > 0
        return
    with pytest.raises(BadSample, match=expected) as error:
        decoder(raw)
    assert error.value.reason == "image_size_mismatch" and "k1" in str(error.value)
