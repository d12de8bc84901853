"""Qwen2.5-VL (transformers' `Qwen2_5_VLForConditionalGeneration`) as a qvltrain model family.

Where each piece lives: config.py (architecture and flavors tiny / 3B / 7B / 72B), build.py (build,
HF load and export, checkpoint guards), vision.py (the tower run packed with window attention),
train_module.py (the packed training forward), modules.py (stage groups, parts), positions.py
(generation under the trained position rule, absolute time), flops.py. Video positions follow
absolute time (`tokens_per_second` x `second_per_grid_ts`, qvltrain/text/positions.py); grounding
boxes are absolute pixels of the resized image (box_format "qwen2_5_vl", qvltrain/text/grounding.py).
Heavy imports stay inside the functions so that composing a config does not import transformers.
"""

from __future__ import annotations

from qvltrain.model.family import ModelFamily
from qvltrain.model.qwen2_5_vl.config import FLAVORS, architecture


def _build_model(model_config, tokenizer, *, zero3: bool):
    from qvltrain.model.qwen2_5_vl.build import build_model

    return build_model(model_config, tokenizer, zero3=zero3)


def _train_module(model, model_config, *, frozen_vision_tower: bool):
    from qvltrain.model.qwen2_5_vl.train_module import Qwen2_5_VLTrainModule

    return Qwen2_5_VLTrainModule(
        model,
        frozen_vision_tower=frozen_vision_tower,
        loss_chunk_tokens=model_config.loss_chunk_tokens,
        activation_checkpointing=model_config.activation_checkpointing,
    )


def _module_groups(model):
    from qvltrain.model.qwen2_5_vl.modules import module_groups

    return module_groups(model)


def _flops(hf_config):
    from qvltrain.model.qwen2_5_vl.flops import Qwen2_5_VLFlops

    return Qwen2_5_VLFlops.from_hf_config(hf_config)


def _reference_flops():
    from qvltrain.model.qwen2_5_vl.flops import QWEN2_5_VL_3B

    return QWEN2_5_VL_3B


def _load_pretrained(folder: str):
    from qvltrain.model.qwen2_5_vl.build import load_pretrained

    return load_pretrained(folder)


def _load_checkpoint_model(hf_config_dir: str, state_dict):
    from qvltrain.model.qwen2_5_vl.build import load_checkpoint_model

    return load_checkpoint_model(hf_config_dir, state_dict)


def _save_processor(out_dir: str, image_budget) -> None:
    from qvltrain.model.qwen2_5_vl.build import save_processor

    save_processor(out_dir, image_budget)


def _extra_render_options(hf_config) -> dict:
    """Absolute-time video positions: the model's temporal positions per second of video."""
    return {"tokens_per_second": int(hf_config.vision_config.tokens_per_second)}


def _parts(model):
    from qvltrain.model.qwen2_5_vl.modules import parts

    return parts(model)


FAMILY = ModelFamily(
    name="qwen2_5_vl",
    hf_model_types=("qwen2_5_vl",),
    flavors=FLAVORS,
    architecture=architecture,
    position_rules=("paper", "transformers"),
    box_format="qwen2_5_vl",
    build_model=_build_model,
    train_module=_train_module,
    module_groups=_module_groups,
    flops=_flops,
    reference_flops=_reference_flops,
    load_pretrained=_load_pretrained,
    load_checkpoint_model=_load_checkpoint_model,
    save_processor=_save_processor,
    parts=_parts,
    extra_render_options=_extra_render_options,
)
