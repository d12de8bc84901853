"""The one shard reader (qvltrain.data.reader) on shards written by webdataset itself, every way a
dataset can be named, and every way a shard can be broken: the loader, the shard check and held-out
generation read the same samples with the same key and suffix rules."""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

import pytest
import webdataset as wds

from apps.heldout_eval import read_prompts
from qvltrain.data.config import DataConfig
from qvltrain.data.loader import TrainBatches
from qvltrain.data.reader import ShardError, iter_samples
from qvltrain.data.shards import expand_shards, shard_sample_counts
from qvltrain.shards.check import check_shards
from qvltrain.text.tokenizer import load_tokenizer
from qvltrain.vision.budgets import VideoBudget
from tests.data.mixed_shards import IMAGE_BUDGET, dataset, make_sample

NUM_SAMPLES = 12


def record_and_media(index: int) -> tuple[dict, dict[str, bytes]]:
    """A text or image sample of our schema whose media member is upper-case (`0.JPG`, as cameras name them)."""
    messages, media, sizes = make_sample(("text", "image")[index % 2], random.Random(index), index)
    for item in messages[0]["content"]:
        if item.get("type") == "image":
            item["file"] = item["file"].upper()
    media = {name.upper(): data for name, data in media.items()}
    meta = {"source": "wds", "image_sizes": sizes, "num_tokens": 200}
    return {"task": "chat", "messages": messages, "meta": meta}, media


def write_with_webdataset(path: Path, start: int, count: int, compress: bool = False) -> list[str]:
    """A shard written by webdataset's own TarWriter; returns its keys."""
    keys = []
    with wds.TarWriter(str(path), compress=compress) as writer:
        for index in range(start, start + count):
            record, media = record_and_media(index)
            keys.append(f"s{index:04d}")
            writer.write({"__key__": keys[-1], "json": json.dumps(record).encode(), **media})
    return keys


@pytest.fixture(scope="module")
def wds_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wds")
    write_with_webdataset(folder / "part-0.tar", 0, NUM_SAMPLES // 2)
    write_with_webdataset(folder / "part-1.TAR.GZ", NUM_SAMPLES // 2, NUM_SAMPLES // 2, compress=True)
    return folder


def keys_of(spec: str) -> list[str]:
    return [raw.key for url in expand_shards(spec) for raw in iter_samples(url)]


def test_every_way_of_naming_shards_reads_the_same_samples(wds_folder: Path) -> None:
    expected = [f"s{i:04d}" for i in range(NUM_SAMPLES)]
    assert keys_of(str(wds_folder)) == expected  # .tar and .TAR.GZ found in the folder
    tar, gz = str(wds_folder / "part-0.tar"), str(wds_folder / "part-1.TAR.GZ")
    assert keys_of(f"{wds_folder}/part-{{0..1}}.*") == expected
    assert keys_of(f"pipe:cat {tar}::pipe:cat {gz}") == expected
    assert keys_of(f"file://{tar}::{gz}") == expected
    assert shard_sample_counts(expand_shards(str(wds_folder))) == [6, 6]  # no index: counted by reading
    first = next(iter_samples(tar, 1))
    assert (first.ordinal, first.key, sorted(first.members)) == (1, "s0001", ["0.jpg", "json"])


def test_loader_check_and_heldout_eval_agree_on_webdataset_shards(wds_folder: Path) -> None:
    report = check_shards(str(wds_folder))
    assert report.ok and report.num_samples == NUM_SAMPLES, report.errors
    config = DataConfig(
        train=[dataset("wds", wds_folder)], seq_len=512, max_patches=2048, pack_window=4, shuffle_buffer=1
    )
    batches = TrainBatches(config, "plain", load_tokenizer(None), 0, 1)
    keys: list[str] = []
    while len(keys) < NUM_SAMPLES:
        keys += next(batches).keys
    assert set(keys[:NUM_SAMPLES]) == {f"s{i:04d}" for i in range(NUM_SAMPLES)}
    assert not batches.skips and batches.mixture == {"wds": len(keys)}
    video = VideoBudget(total_pixels=3136 * 8, min_pixels=3136, max_pixels=3136 * 4)
    prompts = read_prompts(str(wds_folder), load_tokenizer(None), IMAGE_BUDGET, video, limit=100)
    assert [p.key for p in prompts] == [f"s{i:04d}" for i in range(NUM_SAMPLES)]
    assert sum(len(p.sample.patches) for p in prompts) == NUM_SAMPLES // 2  # the upper-case images decoded


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def text_members(key: str, text: str = "some words") -> list[tuple[str, bytes]]:
    record = {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": text}]}
    return [(f"{key}.json", json.dumps(record).encode())]


def test_broken_shards_are_counted_with_their_shard_and_key(tmp_path: Path) -> None:
    import gzip

    good = tar_bytes(text_members("a0") + text_members("a1"))
    (tmp_path / "good.tar").write_bytes(good)
    duplicated = text_members("d0") + text_members("d1") + [("d1.json", b"{}")] + text_members("d2")
    (tmp_path / "dup.tar").write_bytes(tar_bytes(duplicated))
    long = tar_bytes([m for i in range(6) for m in text_members(f"t{i}", "x " * 300)])
    (tmp_path / "cut.tar").write_bytes(long[: 3 * 2048 + 700])  # inside t3's data
    (tmp_path / "cut_header.tar").write_bytes(long[: 2 * 2048 + 100])  # inside t2's header
    zipped = bytearray(gzip.compress(long))
    zipped[len(zipped) // 2 : len(zipped) // 2 + 64] = bytes(64)
    (tmp_path / "bad.tar.gz").write_bytes(bytes(zipped))

    dup = list(iter_samples(str(tmp_path / "dup.tar")))
    assert [(s.key, s.problem is not None) for s in dup] == [("d0", False), ("d1", True), ("d2", False)]
    assert "'d1.json' appears twice" in dup[1].problem
    with pytest.raises(ShardError, match=r"truncated_tar in .*cut.tar at 't2'"):
        list(iter_samples(str(tmp_path / "cut.tar")))
    with pytest.raises(ShardError, match=r"truncated_tar in .*cut_header.tar at 't1'.*inside a header"):
        list(iter_samples(str(tmp_path / "cut_header.tar")))
    with pytest.raises(ShardError, match=r"corrupt_compression in .*bad.tar.gz"):
        list(iter_samples(str(tmp_path / "bad.tar.gz")))
    with pytest.raises(ShardError, match="unreadable_shard in pipe:cat .*nowhere.tar"):
        list(iter_samples(f"pipe:cat {tmp_path}/nowhere.tar 2>/dev/null"))

    names = ["good.tar", "dup.tar", "cut.tar", "bad.tar.gz"]
    spec = "::".join(str(tmp_path / n) for n in names) + f"::pipe:cat {tmp_path}/nowhere.tar 2>/dev/null"
    config = DataConfig(train=[dataset("broken", spec)], seq_len=2048, max_patches=64, shuffle_buffer=1)
    batches = TrainBatches(config, "chatml", load_tokenizer(None), 0, 1)
    keys = [key for _ in range(12) for key in next(batches).keys]
    assert {"a0", "a1", "d0", "d2"} <= set(keys) and "d1" not in keys
    skips = batches.skips
    assert skips["duplicate_member"] >= 1 and skips["truncated_tar"] >= 1
    assert skips["corrupt_compression"] >= 1 and skips["unreadable_shard"] >= 1

    report = check_shards(spec)
    text = "\n".join(report.errors)
    assert "dup.tar:d1: member 'd1.json' appears twice" in text
    assert "cut.tar:t" in text and "truncated_tar" in text
    assert "bad.tar.gz:" in text and "corrupt_compression" in text
    assert "nowhere.tar 2>/dev/null:-: unreadable_shard in pipe:cat" in text
