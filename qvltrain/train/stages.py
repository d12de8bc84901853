"""The paper's three training stages as data: which modules train, at what learning rate.

Which parameters form a group (vision_tower, merger, llm) is the model family's answer
(`ModelFamily.module_groups`), by module, never by parameter name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from qvltrain.model.family import MODULE_GROUPS, ModelFamily

STAGES = ("vit_pretrain", "full_pretrain", "instruct")
TEMPLATES = ("plain", "chatml")


@dataclass
class StageConfig:
    """One training stage (conf/stage/*.yaml)."""

    name: str = "vit_pretrain"
    """Stage name, one of STAGES; also names the run directory by default."""
    trainable: list[str] = field(default_factory=lambda: ["vision_tower", "merger"])
    """Module groups that receive gradients, from MODULE_GROUPS; the others are frozen."""
    template: str = "plain"
    """Default rendering of the stage's data (a dataset may override it): plain or chatml."""
    lr_vision_tower: float = 2e-4
    """Peak learning rate of the ViT blocks and patch embedding."""
    lr_merger: float = 2e-4
    """Peak learning rate of the 2x2 patch merger (the vision-language projector)."""
    lr_llm: float = 1e-4
    """Peak learning rate of the language model (embeddings, decoder, LM head)."""

    def __post_init__(self) -> None:
        if self.name not in STAGES:
            raise ValueError(f"stage.name={self.name!r}: expected one of {', '.join(STAGES)}")
        unknown = sorted(set(self.trainable) - set(MODULE_GROUPS))
        if unknown or not self.trainable:
            raise ValueError(
                f"stage.trainable={list(self.trainable)}: expected a non-empty subset of {', '.join(MODULE_GROUPS)}"
            )
        if self.template not in TEMPLATES:
            raise ValueError(f"stage.template={self.template!r}: expected one of {', '.join(TEMPLATES)}")
        for name in ("lr_vision_tower", "lr_merger", "lr_llm"):
            if getattr(self, name) < 0:
                raise ValueError(f"stage.{name}={getattr(self, name)}: must be >= 0")

    def learning_rate(self, group: str) -> float:
        return getattr(self, f"lr_{group}")


def parameter_group_of(model: torch.nn.Module, family: ModelFamily) -> dict[int, str]:
    """id(parameter) -> its group of MODULE_GROUPS, from the family's modules (first group that holds it).

    Raises ValueError naming parameters that no group holds: a family must place every weight.
    """
    groups: dict[int, str] = {}
    for group, modules in family.module_groups(model).items():
        if group not in MODULE_GROUPS:
            raise ValueError(f"family {family.name}: module group {group!r} is not one of {MODULE_GROUPS}")
        for module in modules:
            for parameter in module.parameters():
                groups.setdefault(id(parameter), group)
    orphans = [name for name, parameter in model.named_parameters() if id(parameter) not in groups]
    if orphans:
        raise ValueError(
            f"family {family.name}: parameters in no module group (stages could not freeze them): {orphans[:5]}"
        )
    return groups


def apply_stage_freezing(model: torch.nn.Module, stage: StageConfig, family: ModelFamily) -> dict[str, int]:
    """Set `requires_grad` by the stage's trainable groups; returns trainable element counts per group.

    Under ZeRO-3 the local tensors are partitions, so counts use `ds_numel` when present.
    """
    group_of = parameter_group_of(model, family)
    trainable_numel = dict.fromkeys(MODULE_GROUPS, 0)
    for parameter in model.parameters():
        group = group_of[id(parameter)]
        parameter.requires_grad_(group in stage.trainable)
        if parameter.requires_grad:
            trainable_numel[group] += getattr(parameter, "ds_numel", parameter.numel())
    return trainable_numel


def is_no_decay(parameter_name: str, parameter: torch.nn.Parameter) -> bool:
    """Norm weights, biases and other vectors get no weight decay (standard practice for transformers)."""
    shape = getattr(parameter, "ds_shape", parameter.shape)
    return len(shape) < 2 or parameter_name.endswith(".bias")


def parameter_groups(
    model: torch.nn.Module, stage: StageConfig, weight_decay: float, family: ModelFamily
) -> list[dict]:
    """Optimizer groups: one per (module group, decay or not), each with its own peak learning rate."""
    group_of = parameter_group_of(model, family)
    groups: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        key = (group_of[id(parameter)], is_no_decay(name, parameter))
        groups.setdefault(key, []).append(parameter)
    return [
        {
            "params": params,
            "name": f"{group}{'_no_decay' if no_decay else ''}",
            "weight_decay": 0.0 if no_decay else weight_decay,
            "lr": stage.learning_rate(group),
            "peak_lr": stage.learning_rate(group),
        }
        for (group, no_decay), params in sorted(groups.items())
    ]
