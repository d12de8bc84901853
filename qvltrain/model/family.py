"""Model families as plug-ins: what a family provides (`ModelFamily`) and the registry (`FAMILIES`).

A family is one folder, `qvltrain/model/<name>/`, whose `__init__.py` defines `FAMILY = ModelFamily(...)`,
plus one line in `FAMILIES` below. Everything outside `qvltrain/model/` asks the family of the run's
`model.family` (or, for an exported folder, of its config.json `model_type`) and never names one:
the engine builds through `build_model` and `train_module`, the stages freeze and group parameters
through `module_groups`, MFU and the rank balance count through `flops`, export writes through
`load_checkpoint_model` / `save_processor`, held-out evaluation generates through `load_pretrained`
and scores boxes through `box_format`; the data path renders samples with `render_options`
(positions and boxes are computed on the CPU side by `qvltrain.text`, which the family names but
the data layer may not import). docs/model-families.md walks through adding one.

Importing a family's `__init__.py` must stay light (no transformers at import time): configs are
validated through `architecture` when a YAML is composed, long before a model is built. Put the
heavy work behind the callables (import inside them).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

FAMILIES: dict[str, str] = {
    "qwen2_vl": "qvltrain.model.qwen2_vl",
    "qwen2_5_vl": "qvltrain.model.qwen2_5_vl",
}
"""`model.family` value -> the package whose `FAMILY` implements it (the registry: one line per family)."""

POSITION_RULE_KEY = "qvltrain_position_rule"
"""Attribute of the transformers config (saved in config.json) naming the position rule trained with."""

DEFAULT_FAMILY = "qwen2_vl"
"""The family of a config or checkpoint that names none (every run before families existed)."""

MODULE_GROUPS = ("vision_tower", "merger", "llm")
"""The stages' parameter groups (conf/stage/*.yaml `trainable`); every family maps its modules onto them."""


class Architecture(Protocol):
    """A family's typed architecture config (its flavors are instances of it). Only this is shared."""

    @property
    def hidden_size(self) -> int:
        """Width of the language model (DeepSpeed's "auto" bucket sizes follow it)."""
        ...


class FlopModel(Protocol):
    """Forward matrix-multiply FLOPs (2 per multiply-add) of one model shape; qvltrain/train/flops.py
    turns them into training FLOPs per stage (backward passes) and into the rank balance's cost model."""

    merge_unit: int
    """Vision patches merged into one LLM token (spatial_merge_size ** 2)."""

    def llm_forward_flops(self, segment_lengths: Sequence[int], num_logit_tokens: int) -> float:
        """Decoder layers over all tokens, causal attention within each segment, LM head over logits."""
        ...

    def vision_forward_flops(self, grid_thw: Sequence[Sequence[int]]) -> tuple[float, float]:
        """(tower, merger) forward FLOPs of the visual items `(t, h, w)` (patches before merging)."""
        ...


@dataclass(frozen=True)
class ModelFamily:
    """Everything qvltrain needs from a model family. Callables take typed objects, never a DictConfig.

    `model_config` below is a `qvltrain.model.config.ModelConfig`; its `architecture` attribute is
    the resolved instance of this family's architecture dataclass (flavor + `model.arch` overrides).
    """

    name: str
    """The `model.family` value, e.g. "qwen2_vl"; also the default `box_format` of rendering."""
    hf_model_types: tuple[str, ...]
    """config.json `model_type` values of this family's transformers models (how an exported folder
    finds its family, e.g. ("qwen2_vl",))."""
    flavors: Mapping[str, Any]
    """Flavor name -> architecture instance (a dataclass satisfying `Architecture`); "tiny" must exist
    (tests and the demo use it). The YAMLs in conf/model/ only name a flavor."""
    architecture: Callable[[str, Mapping[str, Any]], Architecture]
    """(flavor, `model.arch` overrides as a nested dict) -> the typed architecture; raises ValueError
    naming `model.arch.<key>` for an unknown key or a bad value."""
    position_rules: tuple[str, ...]
    """Accepted `model.position_rule` values (qvltrain/text/positions.py), the default first: the rule
    of the family's released weights, assumed for a checkpoint that records none."""
    box_format: str
    """Key of `qvltrain.text.grounding.BOX_FORMATTERS`: how this family writes grounding boxes."""
    build_model: Callable[..., Any]
    """(model_config, tokenizer, *, zero3: bool) -> the transformers model in fp32, built from the flavor
    or loaded from `model_config.init_from` (checked against tokenizer and position rule first), with
    the position rule recorded in its config. Under ZeRO-3 the caller keeps an HfDeepSpeedConfig alive."""
    train_module: Callable[..., Any]
    """(model, model_config, *, frozen_vision_tower: bool) -> the nn.Module DeepSpeed wraps: takes a
    `PackedBatch`, returns (sum of token losses, loss tokens, correct loss tokens); runs the vision tower
    exactly once per micro-batch on every rank (invariant 3); holds the transformers model as `.model`."""
    module_groups: Callable[[Any], dict[str, list[Any]]]
    """model -> {group of MODULE_GROUPS: its modules}, in priority order: a parameter belongs to the
    FIRST group whose modules contain it (so "merger" can sit inside the tower's module). Every
    parameter must fall in some group (qvltrain/train/stages.py refuses a model where one does not)."""
    flops: Callable[[Any], FlopModel]
    """transformers config (of the built model) -> its `FlopModel`."""
    reference_flops: Callable[[], FlopModel]
    """The `FlopModel` of the family's reference release (benchmarks' default cost model)."""
    load_pretrained: Callable[[str], Any]
    """Exported folder -> model in eval mode that generates with the positions it was trained with."""
    load_checkpoint_model: Callable[[str, dict[str, Any]], Any]
    """(checkpoint's hf_config folder, consolidated fp32 state dict without the train module's
    "model." prefix) -> the transformers model (export); refuses missing or unexpected weights."""
    save_processor: Callable[[str, Mapping[str, int]], None]
    """(out_dir, image budget {"min_pixels", "max_pixels"}) -> writes the family's processor config."""
    parts: Callable[[Any], dict[str, Any]]
    """model -> {"vision_tower": module whose forward returns `.pooler_output` merged features,
    "language_model": decoder whose forward returns `.last_hidden_state`} (benchmark profiling hooks)."""
    extra_render_options: Callable[[Any], dict[str, Any]] | None = None
    """transformers config of the model -> further `qvltrain.text.config.RenderConfig` fields this
    family's samples need (e.g. the time scale of its positions); None: only those of `render_options`."""

    def render_options(self, hf_config, position_rule: str) -> dict[str, Any]:
        """The RenderConfig fields the data path takes from the model (TrainBatches / SampleDecoder
        `render_options`): the family's box format, the position rule, and the extras of `hf_config`
        (the built or loaded model's config: it is right also under `model.init_from`)."""
        options = {"box_format": self.box_format, "position_rule": position_rule}
        if self.extra_render_options is not None:
            options.update(self.extra_render_options(hf_config))
        return options

    def trained_position_rule(self, hf_config) -> str:
        """The position rule a checkpoint or export was trained with (its config.json records it;
        none recorded: the released weights' rule, `position_rules[0]`)."""
        return getattr(hf_config, POSITION_RULE_KEY, None) or self.position_rules[0]


def get_family(name: str) -> ModelFamily:
    """The registered family `name`; a ValueError lists the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"model.family={name!r}: expected one of {', '.join(sorted(FAMILIES))}")
    family = importlib.import_module(FAMILIES[name]).FAMILY
    if family.name != name:
        raise ValueError(f"{FAMILIES[name]}.FAMILY is named {family.name!r}, registered as {name!r}")
    return family


def family_of_hf_config(hf_config) -> ModelFamily:
    """The family whose transformers model a config (e.g. an export's config.json) belongs to."""
    model_type = getattr(hf_config, "model_type", None)
    for name in FAMILIES:
        family = get_family(name)
        if model_type in family.hf_model_types:
            return family
    raise ValueError(
        f"model_type {model_type!r} belongs to no registered model family ({', '.join(sorted(FAMILIES))})"
    )
