"""The skip budget as a fraction (data.max_skip_fraction of a dataset's last data.skip_window samples):
a partly broken source that never fails many in a row still stops the run, with a message naming
the dataset, the fraction, the window and the top reasons; identically after a resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from qvltrain.data.config import DataConfig
from qvltrain.data.loader import TrainBatches
from qvltrain.data.skips import SkipLog, TooManyFailures
from qvltrain.shards.writer import ShardWriter
from qvltrain.text.tokenizer import load_tokenizer
from tests.data.mixed_shards import dataset, jpeg
from tests.data.test_bad_data import image_record

PATTERN = ("good", "not_an_image", "good", "unknown_task", "good")
"""Two of every five samples bad (40%), never two bad in a row."""


def write_partly_broken(folder: Path, num_samples: int = 100) -> Path:
    picture = jpeg(64, 64, 1)
    with ShardWriter(str(folder), "partly", max_samples=25) as writer:
        for index in range(num_samples):
            kind = PATTERN[index % len(PATTERN)]
            if kind == "not_an_image":
                writer.write(f"bad{index}", image_record(), {"0.jpg": b"no jpeg"})
            elif kind == "unknown_task":
                writer.write(f"bad{index}", image_record(task="painting"), {"0.jpg": picture})
            else:
                writer.write(f"good{index}", image_record(), {"0.jpg": picture})
    return folder


def write_clean(folder: Path, num_samples: int = 60) -> Path:
    picture = jpeg(64, 64, 2)
    with ShardWriter(str(folder), "clean", max_samples=30) as writer:
        for index in range(num_samples):
            writer.write(f"clean{index}", image_record(), {"0.jpg": picture})
    return folder


def batches_of(tmp_path: Path, **overrides) -> TrainBatches:
    config = DataConfig(
        train=[
            dataset("partly_broken", write_partly_broken(tmp_path / "partly")),
            dataset("clean", write_clean(tmp_path / "clean")),
        ],
        **{"seq_len": 128, "max_patches": 512, "pack_window": 8, "shuffle_buffer": 4, **overrides},
    )
    return TrainBatches(config, "plain", load_tokenizer(None), 0, 1)


def packs_until_stop(batches: TrainBatches, limit: int = 200) -> tuple[int, str]:
    """(packs made before the budget stopped the run, the error message)."""
    for made in range(limit):
        try:
            next(batches)
        except TooManyFailures as error:
            return made, str(error)
    raise AssertionError(f"no stop within {limit} packs")


def test_a_partly_broken_dataset_stops_the_run_with_a_clear_message(tmp_path: Path) -> None:
    batches = batches_of(tmp_path, max_skip_fraction=0.3, skip_window=30)
    made, message = packs_until_stop(batches)
    assert made >= 2
    assert "dataset 'partly_broken'" in message and "'clean'" not in message.split(";")[0]
    assert "of its last 30 samples" in message
    assert "data.max_skip_fraction=0.3" in message and "data.skip_window=30" in message
    fraction = float(message.split("(")[1].split("%")[0]) / 100
    assert 0.3 < fraction <= 0.5  # 40% bad, give or take where the window starts
    assert (
        "not_an_image" in message.split("top reasons")[1]
        and "unknown_task" in message.split("top reasons")[1]
    )


def test_a_fraction_within_the_budget_trains_on(tmp_path: Path) -> None:
    batches = batches_of(tmp_path, max_skip_fraction=0.5, skip_window=30)
    packs = [next(batches) for _ in range(20)]  # several windows' worth of the broken dataset
    keys = {key for pack in packs for key in pack.keys}
    assert any(key.startswith("good") for key in keys) and not any(key.startswith("bad") for key in keys)
    assert batches.skips["not_an_image"] > 0 and batches.skips["unknown_task"] > 0


def test_the_stop_is_identical_after_a_resume(tmp_path: Path) -> None:
    made, message = packs_until_stop(batches_of(tmp_path, max_skip_fraction=0.3, skip_window=30))
    interrupted = batches_of(tmp_path, max_skip_fraction=0.3, skip_window=30)
    for _ in range(made // 2 + 1):
        next(interrupted)
    state = interrupted.state_dict()
    assert state["readers"][0]["skips"]["windows"]["partly_broken"]  # the windows are part of the state
    resumed = batches_of(tmp_path, max_skip_fraction=0.3, skip_window=30)
    resumed.load_state_dict(state)
    more, resumed_message = packs_until_stop(resumed)
    assert (made // 2 + 1 + more, resumed_message) == (made, message)


def test_window_arithmetic_and_state() -> None:
    log = SkipLog(max_consecutive=100, max_skip_fraction=0.5, skip_window=4)
    for outcome in ["a", "", "b", ""] * 3:  # exactly half: within the budget
        if outcome:
            log.skip(outcome, "k", "s", dataset="d")
        else:
            log.kept("d")
    assert log.window_skips["d"] == 2
    state = log.state_dict()
    assert state["windows"]["d"] == [["a", 1], ["", 1], ["b", 1], ["", 1]]  # run-length encoded
    restored = SkipLog(max_consecutive=100, max_skip_fraction=0.5, skip_window=4)
    restored.load_state_dict(state)
    assert list(restored.windows["d"]) == list(log.windows["d"]) and restored.window_skips == log.window_skips
    for current in (log, restored):
        current.kept("other")  # another dataset's window is its own
        current.skip("c", "k", "s", dataset="d")  # evicts the skipped "a": still 2 of 4
        with pytest.raises(
            TooManyFailures,
            match=r"dataset 'd': 3 of its last 4 samples .*\(75\.0% > data\.max_skip_fraction=0\.5, window "
            r"data\.skip_window=4\); top reasons in the window: b 1, c 1, e 1",
        ):
            current.skip("e", "k", "s", dataset="d")  # evicts a kept outcome: 3 of 4


def test_the_budget_waits_for_a_full_window_and_can_be_turned_off() -> None:
    log = SkipLog(max_consecutive=100, max_skip_fraction=0.5, skip_window=10)
    for _ in range(9):
        log.skip("a", "k", "s", dataset="d")  # 9 of 9: not yet a full window
    with pytest.raises(TooManyFailures, match="10 of its last 10"):
        log.skip("a", "k", "s", dataset="d")
    off = SkipLog(max_consecutive=1000, max_skip_fraction=1.0, skip_window=10)
    for _ in range(50):
        off.skip("a", "k", "s", dataset="d")
    with pytest.raises(ValueError, match=r"data\.max_skip_fraction=0\.0"):
        DataConfig(max_skip_fraction=0.0)
    with pytest.raises(ValueError, match=r"data\.skip_window=0"):
        DataConfig(skip_window=0)
