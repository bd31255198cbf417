"""Presets: one key of a mechanism's table names a production parameter set that fills the other keys.

A config class opts in with two class variables: ``PRESET_KEY`` (the field naming the set,
e.g. ``preset`` or ``variant``) and ``PRESETS`` (set name -> {key: value}).  Keys written
in the spec always win over the preset, so ``{kind = "fixed_bonus", preset = "compound_v2",
bonus = 0.05}`` is Compound v2 with a 5% incentive.  The fields' own defaults are those of
the preset that is the field's default, so ``cascadelab mechanisms`` shows them as they apply.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cascadelab.schema import SpecError


def expand_preset(config_cls: type, params: dict[str, Any], path: str) -> dict[str, Any]:
    """``params`` with every key the named preset sets and the spec does not (no-op without presets)."""
    presets: dict[str, dict[str, Any]] | None = getattr(config_cls, "PRESETS", None)
    if presets is None:
        return params
    key = config_cls.PRESET_KEY
    default = next(f.default for f in dataclasses.fields(config_cls) if f.name == key)
    name = params.get(key, default)
    if name not in presets:
        raise SpecError(f"{path}.{key}", f"{name!r} is not allowed; expected one of "
                                         f"{', '.join(repr(p) for p in presets)}")
    return {**presets[name], **params}
