"""The model-family contract (qvltrain/model/family.py), checked for every registered family on its
tiny flavor: what the engine, stages, trainer, export and evaluation rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from qvltrain.data.batch import pack_samples
from qvltrain.data.config import DatasetConfig
from qvltrain.data.decode import SampleDecoder
from qvltrain.data.reader import iter_samples
from qvltrain.data.shards import expand_shards
from qvltrain.model.config import ModelConfig
from qvltrain.model.family import (
    FAMILIES,
    MODULE_GROUPS,
    POSITION_RULE_KEY,
    family_of_hf_config,
    get_family,
)
from qvltrain.text.config import RenderConfig
from qvltrain.text.grounding import BOX_FORMATTERS
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer
from qvltrain.train.export import checkpoint_family
from qvltrain.train.stages import parameter_group_of
from qvltrain.vision.budgets import ImageBudget


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(None)


def tiny(name: str, tokenizer, position_rule: str | None = None):
    family = get_family(name)
    config = ModelConfig(family=name, position_rule=position_rule)
    torch.manual_seed(0)
    return family, config, family.build_model(config, tokenizer, zero3=False)


def test_registry_names_and_errors() -> None:
    assert "qwen2_vl" in FAMILIES
    with pytest.raises(ValueError, match=r"model\.family='qwen9_vl': expected one of .*qwen2_vl"):
        get_family("qwen9_vl")
    with pytest.raises(ValueError, match="belongs to no registered model family"):
        family_of_hf_config(type("Config", (), {"model_type": "llava"})())
    # Checkpoints written before families existed record no model.family: they are Qwen2-VL.
    assert checkpoint_family({"config": {"model": {"flavor": "tiny"}}}).name == "qwen2_vl"
    assert checkpoint_family({"config": {"model": {"family": "qwen2_vl"}}}).name == "qwen2_vl"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_contract(name: str, tokenizer, tmp_path: Path) -> None:
    family, config, model = tiny(name, tokenizer, position_rule=get_family(name).position_rules[-1])
    assert family.name == name and "tiny" in family.flavors
    assert isinstance(config.architecture.hidden_size, int)
    assert model.config.model_type in family.hf_model_types
    assert family_of_hf_config(model.config) is family
    assert family.trained_position_rule(model.config) == config.position_rule  # recorded at build

    group_of = parameter_group_of(model, family)  # raises when a parameter is in no group
    assert {group_of[id(p)] for p in model.parameters()} == set(MODULE_GROUPS)
    assert set(family.parts(model)) == {"vision_tower", "language_model"}

    flops = family.flops(model.config)
    tower, merger = flops.vision_forward_flops([(1, 4, 4)])
    assert flops.llm_forward_flops([10], 10) > 0 and tower > 0 and merger > 0
    assert family.reference_flops().llm_forward_flops([10], 10) > flops.llm_forward_flops([10], 10)

    options = family.render_options(model.config, config.position_rule)
    assert options["box_format"] in BOX_FORMATTERS
    RenderConfig(**options)  # every option is a field the renderer checks

    # Export side: a consolidated state dict loads back into the family's model, bit for bit.
    hf_config_dir = tmp_path / "hf_config"
    model.config.save_pretrained(hf_config_dir)
    loaded = family.load_checkpoint_model(str(hf_config_dir), dict(model.state_dict()))
    for (name_a, a), (name_b, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert name_a == name_b and torch.equal(a, b), name_a
    with pytest.raises(ValueError, match="does not match its config"):
        family.load_checkpoint_model(str(hf_config_dir), {"not_a_weight": torch.zeros(1)})
    family.save_processor(str(tmp_path), {"min_pixels": 3136, "max_pixels": 50176})
    processor = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert processor["size"] == {"shortest_edge": 3136, "longest_edge": 50176}
    export = tmp_path / "export"
    model.save_pretrained(export)
    pretrained = family.load_pretrained(str(export))
    assert not pretrained.training
    assert getattr(pretrained.config, POSITION_RULE_KEY) == config.position_rule


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_train_module_runs_a_pack_and_a_text_only_pack(name: str, tokenizer, synthetic_shards: Path) -> None:
    family, config, model = tiny(name, tokenizer)
    module = family.train_module(model, config, frozen_vision_tower=False)
    assert module.model is model  # export strips the "model." prefix of this attribute
    dataset = DatasetConfig(
        name="shapes", shards=str(synthetic_shards / "train"), image_budget=ImageBudget(3136, 50176)
    )
    render = family.render_options(model.config, config.position_rule)
    decoder = SampleDecoder(
        dataset, "plain", TokenizerInfo.from_tokenizer(tokenizer), 256, render_options=render
    )
    samples = []
    for raw in iter_samples(expand_shards(str(synthetic_shards / "train"))[0]):
        samples.append(decoder({"__key__": raw.key, "__url__": raw.url, **raw.members}))
        if len(samples) == 2:
            break
    with_media = pack_samples(samples, 256, tokenizer.pad_token_id)
    assert with_media.pixels, "the synthetic shards have images"
    for batch in (with_media, pack_samples([_text_only(samples[0])], 256, tokenizer.pad_token_id)):
        loss_sum, num_tokens, _ = module(batch)
        assert torch.isfinite(loss_sum) and int(num_tokens) == batch.num_loss_tokens > 0
        loss_sum.backward()


def _text_only(sample):
    """The sample's text tokens alone (pads and patches dropped), positions 0..L-1 on every row."""
    import dataclasses

    keep = sample.mm_token_type_ids == 0
    length = int(keep.sum())
    return dataclasses.replace(
        sample,
        input_ids=sample.input_ids[keep],
        labels=sample.labels[keep],
        mm_token_type_ids=sample.mm_token_type_ids[keep],
        position_ids=torch.arange(length).expand(4, length).clone(),
        patches=[],
    )
