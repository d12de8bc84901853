"""Every file in conf/ composes into the typed schema; mistakes fail at compose time with a name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from qvltrain.config import Config, register_configs, to_typed
from qvltrain.train.stages import STAGES

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
register_configs()


def compose_config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def group_options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def test_every_group_has_options() -> None:
    assert group_options("stage") == sorted(STAGES)
    for group in ("model", "data", "deepspeed", "logger"):
        assert group_options(group), group


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_composes(stage: str) -> None:
    config = to_typed(compose_config([f"+stage={stage}"]))
    assert isinstance(config, Config)
    assert config.stage.name == stage
    assert config.train.run_dir == f"runs/{stage}"


@pytest.mark.parametrize(
    "group,option",
    [
        (group, option)
        for group in ("model", "data", "deepspeed", "logger")
        for option in group_options(group)
    ],
)
def test_each_group_option_composes(group: str, option: str, tmp_path: Path) -> None:
    overrides = ["+stage=full_pretrain", f"{group}={option}"]
    if group == "model" and option != "tiny":
        overrides.append(f"model.tokenizer={tmp_path}")  # real flavors need a local tokenizer folder
    config = to_typed(compose_config(overrides))
    assert getattr(config, group) is not None


def test_missing_stage_lists_the_stages() -> None:
    with pytest.raises(ValueError, match="vit_pretrain, full_pretrain, instruct"):
        to_typed(compose_config([]))


def test_unknown_yaml_key_fails_at_compose_time_with_its_name(tmp_path: Path) -> None:
    conf_copy = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf_copy)
    with open(conf_copy / "model" / "tiny.yaml", "a") as yaml_file:
        yaml_file.write("llm_num_layerz: 3\n")
    with initialize_config_dir(config_dir=str(conf_copy), version_base="1.3"):
        with pytest.raises(ConfigCompositionException) as error:
            compose(config_name="config", overrides=["+stage=instruct"])
    assert "llm_num_layerz" in f"{error.value} {error.value.__cause__}"


def test_unknown_override_key_fails() -> None:
    with pytest.raises(ConfigCompositionException, match="llm_num_layerz"):
        compose_config(["+stage=instruct", "model.llm_num_layerz=3"])


def test_wrong_type_fails_at_compose_time() -> None:
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose_config(["+stage=instruct", "model.loss_chunk_tokens=many"])


def test_architecture_overrides_are_typed_and_named() -> None:
    """model.arch overrides the flavor's numbers (kept in code); a typo or a wrong type names its key."""
    config = to_typed(compose_config(["+stage=instruct", "+model.arch.llm.num_layers=3"]))
    assert config.model.architecture.llm.num_layers == 3
    assert config.model.architecture.vision.depth == 2  # the rest is the tiny flavor's
    with pytest.raises(ValueError, match=r"model\.arch\.llm\.num_layerz: unknown key; expected one of"):
        to_typed(compose_config(["+stage=instruct", "+model.arch.llm.num_layerz=3"]))
    with pytest.raises(ValueError, match=r"model\.arch\.llm\.num_layers='many'"):
        to_typed(compose_config(["+stage=instruct", "+model.arch.llm.num_layers=many"]))


def test_unknown_family_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"model\.family='llava': expected one of .*qwen2_vl"):
        to_typed(compose_config(["+stage=instruct", "model.family=llava"]))


def test_bad_value_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"stage\.trainable"):
        to_typed(compose_config(["+stage=instruct", "stage.trainable=[eyes]"]))
    with pytest.raises(ValueError, match=r"model\.arch\.llm\.mrope_section"):
        to_typed(compose_config(["+stage=instruct", "+model.arch.llm.mrope_section=[1,1,1]"]))


def test_real_flavors_match_the_release_sizes() -> None:
    """2B and 7B built on the meta device have the release's parameter counts (about 2.21B and 8.29B)."""
    import torch
    from transformers import Qwen2VLForConditionalGeneration

    from qvltrain.model.qwen2_vl.build import build_hf_config

    token_ids = dict(
        pad=151643, eos=151645, image_pad=151655, video_pad=151656, vision_start=151652, vision_end=151653
    )
    # Release sizes: 2.21B and 8.29B; the ViT is ~675M (its merger's output width follows the LLM).
    expected = {"qwen2vl_2b": (2.1, 2.3, 665), "qwen2vl_7b": (8.2, 8.4, 675)}
    for flavor, (low, high, vision_millions) in expected.items():
        config = to_typed(compose_config(["+stage=instruct", f"model={flavor}", "model.tokenizer=/x"]))
        hf_config = build_hf_config(config.model.architecture, token_ids, tokenizer_size=151657)
        with torch.device("meta"):
            model = Qwen2VLForConditionalGeneration(hf_config)
        billions = sum(p.numel() for p in model.parameters()) / 1e9
        assert low < billions < high, (flavor, billions)
        assert sum(p.numel() for p in model.model.visual.parameters()) / 1e6 == pytest.approx(
            vision_millions, rel=0.01
        )
