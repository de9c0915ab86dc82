"""Frozen config dataclasses to and from plain dicts (what checkpoints and JSON files hold)."""

from __future__ import annotations

import dataclasses
import typing


def config_from_dict(cls, d: dict):
    """Rebuild a (nested) frozen config dataclass from ``dataclasses.asdict`` output (lists
    become tuples); unknown keys are refused with the valid ones named."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}; valid keys: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in d.items():
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, dict):
            value = config_from_dict(hints[name], value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
