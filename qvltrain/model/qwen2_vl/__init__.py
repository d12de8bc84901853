"""Qwen2-VL (transformers' `Qwen2VLForConditionalGeneration`) as a qvltrain model family.

Where each piece lives: config.py (architecture and flavors), build.py (build, HF load and export,
checkpoint guards), train_module.py (the packed training forward: common/train_module.py with
Qwen2-VL's tower), modules.py (stage groups by module, parts), positions.py (generation under the
trained position rule; the loader's positions are qvltrain/text/positions.py), flops.py.
Grounding boxes are written by `qvltrain.text.grounding.qwen2_vl_box_text` (box_format "qwen2_vl":
integers in [0, 1000) relative to the original image). Heavy imports stay inside the functions so
that composing a config does not import transformers.
"""

from __future__ import annotations

from qvltrain.model.family import ModelFamily
from qvltrain.model.qwen2_vl.config import FLAVORS, architecture


def _build_model(model_config, tokenizer, *, zero3: bool):
    from qvltrain.model.qwen2_vl.build import build_model

    return build_model(model_config, tokenizer, zero3=zero3)


def _train_module(model, model_config, *, frozen_vision_tower: bool):
    from qvltrain.model.qwen2_vl.train_module import Qwen2VLTrainModule

    return Qwen2VLTrainModule(
        model,
        frozen_vision_tower=frozen_vision_tower,
        loss_chunk_tokens=model_config.loss_chunk_tokens,
        activation_checkpointing=model_config.activation_checkpointing,
    )


def _module_groups(model):
    from qvltrain.model.qwen2_vl.modules import module_groups

    return module_groups(model)


def _flops(hf_config):
    from qvltrain.model.qwen2_vl.flops import Qwen2VLFlops

    return Qwen2VLFlops.from_hf_config(hf_config)


def _reference_flops():
    from qvltrain.model.qwen2_vl.flops import QWEN2VL_2B

    return QWEN2VL_2B


def _load_pretrained(folder: str):
    from qvltrain.model.qwen2_vl.build import load_pretrained

    return load_pretrained(folder)


def _load_checkpoint_model(hf_config_dir: str, state_dict):
    from qvltrain.model.qwen2_vl.build import load_checkpoint_model

    return load_checkpoint_model(hf_config_dir, state_dict)


def _save_processor(out_dir: str, image_budget) -> None:
    from qvltrain.model.qwen2_vl.build import save_processor

    save_processor(out_dir, image_budget)


def _parts(model):
    from qvltrain.model.qwen2_vl.modules import parts

    return parts(model)


FAMILY = ModelFamily(
    name="qwen2_vl",
    hf_model_types=("qwen2_vl",),
    flavors=FLAVORS,
    architecture=architecture,
    position_rules=("paper", "transformers"),
    box_format="qwen2_vl",
    build_model=_build_model,
    train_module=_train_module,
    module_groups=_module_groups,
    flops=_flops,
    reference_flops=_reference_flops,
    load_pretrained=_load_pretrained,
    load_checkpoint_model=_load_checkpoint_model,
    save_processor=_save_processor,
    parts=_parts,
)
