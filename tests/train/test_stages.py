"""Stage freeze sets, parameter groups and the learning-rate schedule on the tiny model."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2VLForConditionalGeneration

from qvltrain.model.common.checkpoint_guards import special_token_ids
from qvltrain.model.config import ModelConfig
from qvltrain.model.family import get_family
from qvltrain.model.qwen2_vl.build import build_hf_config
from qvltrain.text.tokenizer import load_tokenizer
from qvltrain.train.schedule import ScheduleConfig, lr_multiplier
from qvltrain.train.stages import StageConfig, apply_stage_freezing, parameter_groups

FAMILY = get_family("qwen2_vl")


@pytest.fixture(scope="module")
def tiny_model() -> Qwen2VLForConditionalGeneration:
    tokenizer = load_tokenizer(None)
    config = build_hf_config(
        ModelConfig().architecture, special_token_ids(tokenizer), tokenizer_size=len(tokenizer)
    )
    return Qwen2VLForConditionalGeneration(config)


def trainable_names(model) -> set[str]:
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def test_vit_pretrain_trains_only_the_vision_tower_and_merger(tiny_model) -> None:
    apply_stage_freezing(
        tiny_model, StageConfig(name="vit_pretrain", trainable=["vision_tower", "merger"]), FAMILY
    )
    names = trainable_names(tiny_model)
    assert names and all(name.startswith("model.visual.") for name in names)
    assert any(".visual.merger." in name for name in names)
    assert any(".visual.blocks." in name for name in names)
    assert all(
        name.startswith("model.visual.") for name, p in tiny_model.named_parameters() if p.requires_grad
    )


def test_instruct_freezes_the_vision_tower_but_not_the_merger(tiny_model) -> None:
    apply_stage_freezing(tiny_model, StageConfig(name="instruct", trainable=["merger", "llm"]), FAMILY)
    names = trainable_names(tiny_model)
    visual = {name for name in names if ".visual." in f".{name}"}
    assert visual and all(name.startswith("model.visual.merger.") for name in visual)
    assert any(name.startswith("model.language_model.") for name in names)
    assert "model.visual.patch_embed.proj.weight" not in names


def test_full_pretrain_trains_everything(tiny_model) -> None:
    apply_stage_freezing(
        tiny_model, StageConfig(name="full_pretrain", trainable=["vision_tower", "merger", "llm"]), FAMILY
    )
    assert trainable_names(tiny_model) == {name for name, _ in tiny_model.named_parameters()}


def test_parameter_groups_split_lr_and_weight_decay(tiny_model) -> None:
    stage = StageConfig(
        name="full_pretrain",
        trainable=["vision_tower", "merger", "llm"],
        lr_vision_tower=1.0,
        lr_merger=2.0,
        lr_llm=3.0,
    )
    apply_stage_freezing(tiny_model, stage, FAMILY)
    groups = {group["name"]: group for group in parameter_groups(tiny_model, stage, 0.1, FAMILY)}
    assert set(groups) == {f"{g}{s}" for g in ("vision_tower", "merger", "llm") for s in ("", "_no_decay")}
    assert groups["merger"]["lr"] == 2.0 and groups["llm_no_decay"]["lr"] == 3.0
    assert (
        groups["vision_tower"]["weight_decay"] == 0.1
        and groups["vision_tower_no_decay"]["weight_decay"] == 0.0
    )
    no_decay_ids = {id(p) for p in groups["llm_no_decay"]["params"]}
    for name, parameter in tiny_model.named_parameters():
        if name.endswith(".bias") or "norm" in name:
            assert id(parameter) in no_decay_ids or ".visual." in name
    every_param = [p for group in groups.values() for p in group["params"]]
    assert len(every_param) == len({id(p) for p in every_param}) == len(list(tiny_model.parameters()))


def test_schedule_is_a_pure_function_of_the_step() -> None:
    config = ScheduleConfig(warmup_steps=4, min_lr_ratio=0.1)
    values = [lr_multiplier(step, 20, config) for step in range(20)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values == sorted(values[:4]) + sorted(values[4:], reverse=True)
    assert lr_multiplier(20, 20, config) == pytest.approx(0.1)
    assert values == [lr_multiplier(step, 20, config) for step in range(20)]


def test_stage_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="stage.name"):
        StageConfig(name="pretrain")
    with pytest.raises(ValueError, match="stage.template"):
        StageConfig(template="markdown")
    with pytest.raises(ValueError, match="stage.lr_llm"):
        StageConfig(lr_llm=-1.0)


def test_groups_come_from_modules_not_names(tiny_model) -> None:
    """The family's modules decide which group a parameter is in, and a parameter that no group holds
    (a module the family does not know) is refused by name."""
    stage = StageConfig(name="instruct", trainable=["merger", "llm"])
    apply_stage_freezing(tiny_model, stage, FAMILY)
    merger_ids = {id(p) for p in tiny_model.model.visual.merger.parameters()}
    groups = parameter_groups(tiny_model, stage, 0.1, FAMILY)
    merger_group = [p for g in groups if g["name"].startswith("merger") for p in g["params"]]
    assert {id(p) for p in merger_group} == merger_ids
    tiny_model.extra = torch.nn.Linear(2, 2)
    try:
        with pytest.raises(ValueError, match=r"no module group.*extra\.weight"):
            apply_stage_freezing(tiny_model, stage, FAMILY)
    finally:
        del tiny_model.extra
