"""The DeepSpeed config a run hands to deepspeed.initialize: shipped groups and a user's own JSON,
"auto" filled from our config, conflicting values refused naming both (no process group needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qvltrain.config import to_typed
from qvltrain.train.deepspeed_config import (
    RunValues,
    deepspeed_config,
    is_zero3,
    offloads_optimizer,
    resolve_deepspeed_config,
    uses_cpu_adam,
)
from tests.test_config import compose_config, group_options

# The shape of the DeepSpeed JSON the HF Trainer documents (every value it can fill is "auto").
HF_STYLE_JSON = {
    "bf16": {"enabled": "auto"},
    "fp16": {"enabled": "auto"},
    "optimizer": {
        "type": "AdamW",
        "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"},
    },
    "zero_optimization": {
        "stage": 3,
        "overlap_comm": True,
        "reduce_bucket_size": "auto",
        "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto",
        "stage3_gather_16bit_weights_on_model_save": True,
    },
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
}


def composed(overrides: list[str]):
    return to_typed(compose_config(["+stage=full_pretrain", *overrides]))


def write_json(tmp_path: Path, content) -> Path:
    path = tmp_path / "ds_config.json"
    path.write_text(json.dumps(content) if not isinstance(content, str) else content)
    return path


def values(**changes) -> RunValues:
    base = dict(
        micro_batch_size=2,
        grad_accum_steps=3,
        world_size=4,
        on_gpu=True,
        max_grad_norm=1.0,
        hidden_size=64,
        learning_rates={"llm": 1e-4},
        adam_betas=(0.9, 0.95),
        adam_eps=1e-8,
        weight_decay=0.1,
        max_steps=100,
        warmup_steps=10,
        min_lr_ratio=0.1,
    )
    return RunValues(**{**base, **changes})


@pytest.mark.parametrize("option", group_options("deepspeed"))
def test_every_shipped_group_resolves_on_cpu_and_gpu(option: str) -> None:
    config = composed([f"deepspeed={option}", "data.micro_batch_size=2", "train.grad_accum_steps=3"])
    for on_gpu in (False, True):
        ds = deepspeed_config(config, world_size=2, on_gpu=on_gpu)
        assert "config_file" not in ds
        assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]) == (2, 3)
        assert ds["train_batch_size"] == 2 * 3 * 2
        assert ds["gradient_clipping"] == config.train.max_grad_norm
        assert ds["bf16"]["enabled"] is on_gpu
        assert "auto" not in json.dumps(ds)


def test_the_shipped_stages_and_offload() -> None:
    stages = {
        option: deepspeed_config(composed([f"deepspeed={option}"]), 2, False)
        for option in ("zero2", "zero3", "zero3_offload")
    }
    assert [ds["zero_optimization"]["stage"] for ds in stages.values()] == [2, 3, 3]
    assert [is_zero3(ds) for ds in stages.values()] == [False, True, True]
    assert [offloads_optimizer(ds) for ds in stages.values()] == [False, False, True]
    offload = stages["zero3_offload"]["zero_optimization"]
    assert offload["offload_optimizer"]["device"] == offload["offload_param"]["device"] == "cpu"
    assert uses_cpu_adam(stages["zero3_offload"])
    hidden = composed([]).model.architecture.hidden_size  # "auto" buckets follow the model width
    assert offload["reduce_bucket_size"] == hidden * hidden
    assert offload["stage3_prefetch_bucket_size"] == int(0.9 * hidden * hidden)
    assert offload["stage3_param_persistence_threshold"] == 10 * hidden


def test_hf_style_json_is_filled_from_our_config(tmp_path: Path) -> None:
    path = write_json(tmp_path, HF_STYLE_JSON)
    config = composed(
        [
            f"deepspeed.config_file={path}",
            "data.micro_batch_size=2",
            "train.max_grad_norm=0.5",
            "+model.arch.llm.hidden_size=128",
            "+model.arch.llm.num_heads=8",
        ]
    )
    ds = deepspeed_config(config, world_size=2, on_gpu=True)
    assert ds["train_micro_batch_size_per_gpu"] == 2 and ds["train_batch_size"] == 2 * 1 * 2
    assert ds["gradient_clipping"] == 0.5
    assert ds["bf16"]["enabled"] is True and ds["fp16"]["enabled"] is False
    assert ds["zero_optimization"]["reduce_bucket_size"] == 128 * 128
    assert ds["zero_optimization"]["stage3_param_persistence_threshold"] == 1280
    assert ds["zero_optimization"]["overlap_comm"] is True  # the user's own settings stay
    assert "optimizer" not in ds  # checked, then stepped by qvltrain's own AdamW
    # The group's YAML settings are not mixed in: the file is the whole DeepSpeed config.
    assert "stage3_gather_16bit_weights_on_model_save" in ds["zero_optimization"]
    assert "steps_per_print" not in ds


def test_matching_numbers_in_the_json_are_accepted(tmp_path: Path) -> None:
    content = {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 2,
        "train_batch_size": 4,
        "gradient_clipping": 1.0,
        "optimizer": {
            "type": "Adam",
            "params": {"lr": 1e-4, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1},
        },
        "scheduler": {
            "type": "WarmupCosineLR",
            "params": {
                "total_num_steps": 50,
                "warmup_num_steps": 10,
                "cos_min_ratio": 0.1,
                "warmup_type": "linear",
            },
        },
        "zero_optimization": {"stage": 2},
    }
    config = composed(
        [
            f"deepspeed.config_file={write_json(tmp_path, content)}",
            "train.grad_accum_steps=2",
            "stage.lr_vision_tower=1e-4",
            "stage.lr_merger=1e-4",
            "stage.lr_llm=1e-4",
        ]
    )
    ds = deepspeed_config(config, world_size=2, on_gpu=False)
    assert ds["zero_optimization"]["stage"] == 2 and "scheduler" not in ds and "optimizer" not in ds


@pytest.mark.parametrize(
    "content,overrides,message",
    [
        (
            {"train_micro_batch_size_per_gpu": 4},
            [],
            r"train_micro_batch_size_per_gpu=4 conflicts with data\.micro_batch_size=1",
        ),
        (
            {"gradient_accumulation_steps": 8},
            [],
            r"gradient_accumulation_steps=8 conflicts with train\.grad_accum_steps=1",
        ),
        (
            {"train_batch_size": 64},
            ["data.micro_batch_size=2"],
            r"train_batch_size=64 conflicts with data\.micro_batch_size x train\.grad_accum_steps x world size "
            r"\(2 x 1 x 2\)=4",
        ),
        ({"gradient_clipping": 5.0}, [], r"gradient_clipping=5\.0 conflicts with train\.max_grad_norm=1\.0"),
        (
            {"optimizer": {"type": "AdamW", "params": {"betas": [0.9, 0.999]}}},
            [],
            r"optimizer\.params\.betas=\[0\.9, 0\.999\] conflicts with train\.adam_betas=\[0\.9, 0\.95\]",
        ),
        (
            {"optimizer": {"type": "AdamW", "params": {"weight_decay": 0.0}}},
            [],
            r"optimizer\.params\.weight_decay=0\.0 conflicts with train\.weight_decay=0\.1",
        ),
        (
            {"optimizer": {"type": "AdamW", "params": {"eps": 1e-6}}},
            [],
            r"optimizer\.params\.eps=1e-06 conflicts with train\.adam_eps=1e-08",
        ),
        (
            {"optimizer": {"type": "AdamW", "params": {"lr": 3e-5}}},
            [],
            r"optimizer\.params\.lr=3e-05: conflicts with .*stage\.lr_llm=0\.001, stage\.lr_merger=",
        ),
        ({"optimizer": {"type": "Lamb", "params": {}}}, [], r"optimizer\.type='Lamb': qvltrain steps AdamW"),
        (
            {"scheduler": {"type": "WarmupLR", "params": {}}},
            [],
            r"scheduler\.type='WarmupLR': differs from qvltrain's schedule",
        ),
        (
            {"scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 1000}}},
            ["train.max_steps=20"],
            r"scheduler\.params\.total_num_steps=1000 conflicts with train\.max_steps=20",
        ),
        (
            {"scheduler": {"type": "WarmupCosineLR", "params": {"warmup_type": "log"}}},
            [],
            r"warmup_type='log': qvltrain warms up linearly",
        ),
        ({"fp16": {"enabled": True}}, [], r"fp16\.enabled=True: .*fp16 is not supported"),
        (
            {"zero_optimization": {"stage": 3, "sub_group_size": "auto"}},
            [],
            r"zero_optimization\.sub_group_size is \"auto\"",
        ),
        ({"zero_optimization": {"stage": 4}}, [], r"zero_optimization\.stage=4: expected 0, 1, 2 or 3"),
    ],
)
def test_conflicts_name_both_values_and_the_file(tmp_path: Path, content, overrides, message) -> None:
    path = write_json(tmp_path, content)
    config = composed([f"deepspeed.config_file={path}", *overrides])
    with pytest.raises(ValueError, match=message) as error:
        deepspeed_config(config, world_size=2, on_gpu=False)
    assert str(path) in str(error.value)


def test_a_group_value_that_conflicts_names_the_group() -> None:
    config = composed(["deepspeed=zero2", "deepspeed.gradient_clipping=2.0"])
    with pytest.raises(
        ValueError,
        match=r"the deepspeed config group \(deepspeed\.\*\): gradient_clipping=2\.0 conflicts with train\.max_grad_norm=1\.0",
    ):
        deepspeed_config(config, world_size=2, on_gpu=False)
    agreeing = composed(["deepspeed=zero2", "deepspeed.gradient_clipping=2.0", "train.max_grad_norm=2.0"])
    assert deepspeed_config(agreeing, world_size=2, on_gpu=False)["gradient_clipping"] == 2.0


def test_unreadable_json_names_the_file_and_line(tmp_path: Path) -> None:
    broken = write_json(tmp_path, '{\n  "zero_optimization": {"stage": 2,}\n}')
    with pytest.raises(ValueError, match=rf"{broken}.*not valid JSON at line 2"):
        deepspeed_config(composed([f"deepspeed.config_file={broken}"]), 2, False)
    with pytest.raises(ValueError, match=r"no such file"):
        deepspeed_config(composed([f"deepspeed.config_file={tmp_path / 'missing.json'}"]), 2, False)
    listing = write_json(tmp_path, "[1, 2]")
    with pytest.raises(ValueError, match=r"expected a JSON object, got list"):
        deepspeed_config(composed([f"deepspeed.config_file={listing}"]), 2, False)


def test_lr_must_match_every_trainable_group() -> None:
    optimizer = {"optimizer": {"type": "AdamW", "params": {"lr": 1e-4}}}
    resolve_deepspeed_config(optimizer, values(learning_rates={"llm": 1e-4, "merger": 1e-4}))
    with pytest.raises(ValueError, match=r"stage\.lr_llm=0\.0001, stage\.lr_merger=0\.0002"):
        resolve_deepspeed_config(optimizer, values(learning_rates={"llm": 1e-4, "merger": 2e-4}))


def test_cpu_adam_unless_the_config_lets_deepspeed_take_a_torch_optimizer() -> None:
    offload = {"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}
    assert uses_cpu_adam(resolve_deepspeed_config(offload, values()))
    relaxed = resolve_deepspeed_config({**offload, "zero_force_ds_cpu_optimizer": False}, values())
    assert offloads_optimizer(relaxed) and not uses_cpu_adam(relaxed)
    assert not offloads_optimizer(resolve_deepspeed_config({"zero_optimization": {"stage": 3}}, values()))


def test_train_config_checks_the_new_fields() -> None:
    with pytest.raises(ValueError, match=r"train\.max_grad_norm=-1\.0"):
        composed(["train.max_grad_norm=-1.0"])
    with pytest.raises(ValueError, match=r"train\.adam_eps=0\.0"):
        composed(["train.adam_eps=0.0"])
