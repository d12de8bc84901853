"""Balancing ranks by cost: the cost model is the FLOP count, ranks agree without talking, resume is exact."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import pytest

from apps.bench import balance as balance_bench
from qvltrain.data.balance import QUANTILE_BLOCK, CostModel, pick, planned_slices, take, target_quantile
from qvltrain.data.config import DataConfig
from qvltrain.data.loader import TrainBatches
from qvltrain.data.packer import PlanItem
from qvltrain.model.qwen2_vl.flops import QWEN2VL_2B, Qwen2VLFlops
from qvltrain.text.tokenizer import load_tokenizer
from qvltrain.train.flops import balance_cost_model, training_flops
from qvltrain.vision.budgets import ImageBudget
from tests.data.mixed_shards import dataset, write_mixed_shards
from tests.data.test_loader import SHAPES_BUDGET, check_resume_is_exact

ALL = ["vision_tower", "merger", "llm"]
TINY_SHAPE = Qwen2VLFlops(64, 128, 2, 4, 2, 1000, 64, 256, 2, 1176, 4)


@pytest.mark.parametrize("shape", [QWEN2VL_2B, TINY_SHAPE])
@pytest.mark.parametrize("trainable", [ALL, ["merger"], ["llm"], ["vision_tower", "merger"]])
def test_sample_cost_is_the_training_flops(shape: Qwen2VLFlops, trainable: list[str]) -> None:
    model = balance_cost_model(shape, trainable)
    grids = [(1, 36, 52), (3, 8, 12)]  # an image and a 3-slice video, patches divisible by 4
    tokens = 40 + sum(t * h * w for t, h, w in grids) // 4
    expected = training_flops(shape, [tokens], tokens, grids, trainable)
    got = model.sample_cost(tokens, [(t, h * w) for t, h, w in grids])
    assert got == pytest.approx(expected, rel=1e-12)


def test_default_cost_model_is_qwen2vl_2b_fully_trained() -> None:
    expected = balance_cost_model(QWEN2VL_2B, ALL)
    for name in ("llm_token", "llm_pair", "vision_patch", "vision_pair"):
        assert getattr(CostModel(), name) == pytest.approx(getattr(expected, name), rel=1e-4)
    # The benchmark prices samples by a family's reference release on request (apps.bench.balance).
    assert balance_bench.family_cost_model("qwen2_vl") == expected
    assert balance_bench.family_cost_model(None) == CostModel()


def test_quantiles_are_shared_stratified_and_reach_every_position() -> None:
    first = [target_quantile(7, k) for k in range(4 * QUANTILE_BLOCK)]
    assert first == [target_quantile(7, k) for k in range(4 * QUANTILE_BLOCK)]  # any rank, any time
    assert first != [target_quantile(8, k) for k in range(4 * QUANTILE_BLOCK)]
    for block in range(4):
        bands = sorted(
            int(q * QUANTILE_BLOCK) for q in first[block * QUANTILE_BLOCK : (block + 1) * QUANTILE_BLOCK]
        )
        assert bands == list(range(QUANTILE_BLOCK))
    costs = [5.0, 1.0, 3.0, 3.0]
    assert (
        pick(costs, 0.0) == 1 and pick(costs, 0.99) == 0 and pick(costs, 0.3) == 2 and pick(costs, 0.5) == 3
    )  # ties: earlier first
    picked = {pick(list(range(64)), target_quantile(0, k)) for k in range(64 * 40)}
    assert {0, 63} <= picked  # the cheapest and the dearest pack are taken too: nothing waits forever


def test_take_removes_the_pack_at_the_quantile() -> None:
    ready = deque(
        [[PlanItem("a", 10, 0, 0, 5.0)], [PlanItem("b", 10, 0, 1, 1.0), PlanItem("c", 5, 0, 2, 1.0)]]
    )
    assert [item.key for item in take(ready, 0.1)] == ["b", "c"]
    assert [[item.key for item in pack] for pack in ready] == [["a"]]


def test_planned_slices_from_metadata() -> None:
    budget = ImageBudget(min_pixels=3136, max_pixels=12544)
    image = {"messages": [{"role": "user", "content": [{"type": "image", "file": "a.jpg"}]}]}
    record = {**image, "meta": {"image_sizes": [[112, 56]]}}
    assert planned_slices(record, budget, 64, 32) == [(1, 32)]  # 56x112 px: 4 x 8 patches
    video = {"messages": [{"role": "user", "content": [{"type": "video", "file": "v.mp4"}]}], "meta": {}}
    assert planned_slices(video, budget, 64, 256) == [(4, 64)]  # frames as large as the budget allows
    assert planned_slices({"messages": []}, budget, 64, 0) == []


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    return write_mixed_shards(tmp_path_factory.mktemp("mixed"), num_samples=40, samples_per_shard=5)


def balanced(mixed: Path, synthetic_shards: Path, **overrides) -> DataConfig:
    from qvltrain.data.config import DatasetConfig

    shapes = DatasetConfig(name="shapes", shards=str(synthetic_shards / "train"), image_budget=SHAPES_BUDGET)
    values = {
        "seq_len": 256,
        "max_patches": 768,
        "pack_window": 16,
        "shuffle_buffer": 4,
        "balance_lookahead": 6,
    }
    return DataConfig(train=[dataset("mixed", mixed, weight=2.0), shapes], **{**values, **overrides})


@pytest.mark.parametrize("num_workers,world_size", [(0, 2), (2, 2)])
def test_resume_with_lookahead_is_exact(
    mixed: Path, synthetic_shards: Path, num_workers: int, world_size: int
) -> None:
    data = balanced(mixed, synthetic_shards, num_workers=num_workers)
    state = check_resume_is_exact(data, world_size - 1, world_size)
    assert any(len(reader["ready"]) >= 5 for reader in state["readers"])  # the lookahead is in the state


def test_lookahead_reorders_packs_only(mixed: Path, synthetic_shards: Path) -> None:
    """The same samples in the same packs, one order of them chosen by cost; budgets hold."""
    tokenizer = load_tokenizer(None)
    plain = TrainBatches(balanced(mixed, synthetic_shards, balance_lookahead=0), "plain", tokenizer, 0, 1)
    ordered = TrainBatches(balanced(mixed, synthetic_shards), "plain", tokenizer, 0, 1)
    plain_packs = [tuple(next(plain).keys) for _ in range(30)]
    ordered_packs = [tuple(next(ordered).keys) for _ in range(30)]
    assert plain_packs != ordered_packs
    common = set(plain_packs[:20]) & set(ordered_packs)
    assert len(common) >= 15  # packs are the planner's own; only which one comes next differs
    for batch in (next(ordered) for _ in range(5)):
        assert batch.input_ids.shape[1] == 256
        assert batch.grid_thw is None or int(batch.grid_thw.prod(-1).sum()) <= 768


def test_balance_bench_runs_on_a_workload_file(tmp_path: Path) -> None:
    rows = [
        {"text_tokens": 300 + 37 * (i % 11), "visual_tokens": [256 * (i % 5)] if i % 5 else []}
        for i in range(3000)
    ]
    rows.append({"text_tokens": 10, "visual_tokens": [64], "visual_frames": [4]})
    rows.append({"text_tokens": 9000, "visual_tokens": []})  # over seq_len: left out, counted
    workload = tmp_path / "workload.jsonl"
    workload.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    report = balance_bench.main(
        [
            "--workload",
            str(workload),
            "--ranks",
            "2",
            "4",
            "--steps",
            "40",
            "--lookahead",
            "8",
            "--out",
            str(tmp_path / "b.json"),
        ]
    )
    assert report["left_out"] == 1 and json.loads((tmp_path / "b.json").read_text())["ranks"].keys() == {
        "2",
        "4",
    }
    for row in report["ranks"].values():
        assert row["balanced"]["steps"] == row["baseline"]["steps"] > 0
        assert row["balanced"]["step_efficiency"] > row["baseline"]["step_efficiency"]
        assert row["balanced"]["packing_efficiency"] > 0.95
    workload.write_text('{"text_tokens": -1}\n')
    with pytest.raises(ValueError, match="workload.jsonl:1"):
        balance_bench.main(["--workload", str(workload), "--out", str(tmp_path / "c.json")])
