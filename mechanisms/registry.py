"""The mechanism registry: id -> class; adding a mechanism is one module plus one line here."""

from __future__ import annotations

from typing import Any

from cascadelab.schema import SpecError, field_docs, from_dict
from mechanisms.backstop_pool import BackstopPool
from mechanisms.base import MechanismBase
from mechanisms.dutch_auction import DutchAuction
from mechanisms.english_auction import EnglishAuction
from mechanisms.fixed_bonus import FixedBonus
from mechanisms.partial import Partial
from mechanisms.presets import expand_preset

REGISTRY: dict[str, type[MechanismBase]] = {
    cls.name: cls
    for cls in (
        BackstopPool,
        FixedBonus,
        Partial,
        DutchAuction,
        EnglishAuction,
    )
}


def parse_config(value: Any, path: str) -> Any:
    """Build a mechanism's config from a spec table ``{kind = "...", <params>}``."""
    if not isinstance(value, dict):
        raise SpecError(path, f"expected a table like {{ kind = \"fixed_bonus\", ... }}, got {value!r}")
    kind = value.get("kind")
    if kind not in REGISTRY:
        raise SpecError(f"{path}.kind", f"unknown mechanism {kind!r}; one of {', '.join(sorted(REGISTRY))}")
    params = {k: v for k, v in value.items() if k != "kind"}
    config_cls = REGISTRY[kind].Config
    return from_dict(config_cls, expand_preset(config_cls, params, path), path)


def make(config: Any, protocol: int, n_assets: int, dt_seconds: float = 60.0) -> MechanismBase:
    """Instantiate the mechanism for ``config`` serving protocol index ``protocol`` (steps of ``dt_seconds``).

    ``dt_seconds`` is set after construction, so subclasses that override ``__init__`` with the
    original ``(config, protocol, n_assets)`` signature keep working.
    """
    mech = REGISTRY[type(config).kind_id](config, protocol, n_assets)
    mech.dt_seconds = float(dt_seconds)
    return mech


def describe() -> list[dict[str, Any]]:
    """Every registered mechanism with its parameters, defaults, allowed ranges and source."""
    out = []
    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        out.append({
            "id": name,
            "doc": (cls.__doc__ or "").strip().splitlines()[0],
            "source": cls.source,
            "presets": getattr(cls.Config, "PRESETS", {}),
            "params": [
                {"name": n, "default": d, "allowed": r, "doc": doc}
                for n, d, r, doc in field_docs(cls.Config)
            ],
        })
    return out
