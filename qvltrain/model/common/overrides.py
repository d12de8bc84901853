"""Flavor + `model.arch` overrides -> a family's typed architecture, with errors that name the key."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def with_overrides(base: T, overrides: Mapping[str, Any], where: str = "model.arch") -> T:
    """A copy of the (nested) dataclass `base` with `overrides` applied; nested dataclass fields take
    nested mappings. Unknown keys raise ValueError naming `where.key` and the known keys; the copy's
    `__post_init__` checks the values."""
    if not isinstance(overrides, Mapping):
        raise ValueError(f"{where}={overrides!r}: expected a mapping of field names to values")
    fields = {field.name: field for field in dataclasses.fields(base)}
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ValueError(f"{where}.{key}: unknown key; expected one of {', '.join(fields)}")
        current = getattr(base, key)
        if dataclasses.is_dataclass(current):
            changes[key] = with_overrides(current, value, f"{where}.{key}")
        else:
            changes[key] = _checked(value, current, f"{where}.{key}")
    return dataclasses.replace(copy.deepcopy(base), **changes)


def _checked(value: Any, current: Any, where: str) -> Any:
    """`value` when it has the type of the field's current value (ints pass for floats; None fields
    take anything the dataclass's own checks accept)."""
    if current is None or value is None:
        return value
    expected = float if isinstance(current, float) else type(current)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(current, (list, tuple)) and isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        raise ValueError(f"{where}={value!r}: expected a {expected.__name__} like {current!r}")
    return value
