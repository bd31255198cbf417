"""Typed, validated configuration records built from plain dicts (TOML tables).

Every config in cascadelab is a frozen dataclass whose fields are declared with
:func:`param` (default, allowed range or choices, one-line doc).  :func:`from_dict`
turns nested dicts into those records and raises :class:`SpecError` naming the
exact key path and what is allowed; :func:`to_dict` turns them back, so a resolved
spec round-trips through TOML/JSON for provenance.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING = dataclasses.MISSING


class SpecError(ValueError):
    """Bad input: carries the key path and a message saying what is allowed."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def param(
    default: Any = _MISSING,
    *,
    default_factory: Any = _MISSING,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    choices: tuple[Any, ...] | None = None,
    doc: str = "",
) -> Any:
    """Declare a config field with its allowed range (closed unless ``*_open``) or choices."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "choices": choices, "doc": doc}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def describe_range(meta: Mapping[str, Any]) -> str:
    """Human-readable allowed range of a field, e.g. ``[0, 1)``."""
    if meta.get("choices"):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is None and hi is None:
        return "any value"
    left = "(" if meta.get("lo_open") else "["
    right = ")" if meta.get("hi_open") else "]"
    return f"{left}{'-inf' if lo is None else _fmt(lo)}, {'inf' if hi is None else _fmt(hi)}{right}"


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _check_range(value: Any, meta: Mapping[str, Any], path: str) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise SpecError(path, f"{value!r} is not allowed; expected {describe_range(meta)}")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    lo, hi = meta.get("lo"), meta.get("hi")
    bad = (
        (lo is not None and (value < lo or (meta.get("lo_open") and value == lo)))
        or (hi is not None and (value > hi or (meta.get("hi_open") and value == hi)))
    )
    if bad:
        raise SpecError(path, f"{value!r} is out of range; allowed {describe_range(meta)}")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def convert(value: Any, tp: Any, path: str) -> Any:
    """Convert a plain TOML value to the annotated type ``tp`` or raise SpecError."""
    dispatch = getattr(tp, "__spec_dispatch__", None)
    if dispatch is not None:
        return dispatch(value, path)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return convert(value, inner[0], path)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise SpecError(path, f"expected a table, got {type(value).__name__} {value!r}")
        ktype, vtype = args or (str, Any)
        return {convert(k, ktype, path): convert(v, vtype, _join(path, k)) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SpecError(path, f"expected an array, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(v, args[0], _join(path, i)) for i, v in enumerate(value))
        if len(value) != len(args):
            raise SpecError(path, f"expected an array of {len(args)} values, got {len(value)}")
        return tuple(convert(v, a, _join(path, i)) for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(path, f"expected a number, got {type(value).__name__} {value!r}")
        value = float(value)
        if math.isnan(value):
            raise SpecError(path, "NaN is not allowed")
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(path, f"expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(path, f"expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(path, f"expected a string, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"{path}: unsupported annotation {tp!r}")  # a bug in a config class, not user input


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build the frozen dataclass ``cls`` from a dict; unknown keys and bad values are SpecErrors."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise SpecError(path, f"expected a table, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise SpecError(_join(path, key), f"unknown key; allowed keys here: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        fpath = _join(path, name)
        if name in data:
            value = convert(data[name], hints[name], fpath)
            _check_range(value, f.metadata, fpath)
            kwargs[name] = value
        elif f.default is _MISSING and f.default_factory is _MISSING:
            raise SpecError(fpath, "missing required key")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        check(path)
    return obj


def to_dict(obj: Any) -> Any:
    """Plain-data (TOML/JSON-ready) form of a config tree; inverse of :func:`from_dict`."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        kind = getattr(type(obj), "kind_id", None)
        if kind is not None:
            out["kind"] = kind
        for f in dataclasses.fields(obj):
            if f.init:
                out[f.name] = to_dict(getattr(obj, f.name))
        return out
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    return obj


def field_docs(cls: type) -> list[tuple[str, Any, str, str]]:
    """(name, default, allowed range, doc) for every field of a config class."""
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not _MISSING else (
            f.default_factory() if f.default_factory is not _MISSING else "required"
        )
        rows.append((f.name, default, describe_range(f.metadata), f.metadata.get("doc", "")))
    return rows
