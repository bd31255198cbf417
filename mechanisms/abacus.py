"""Maker's Abacus price curves: the fraction of the starting price ``top`` a Dutch auction asks after ``dur`` seconds.

Source: makerdao/dss:src/abaci.sol@fa4f663 (shared/reference/mechanisms.md section 3.3):

| kind                    | parameters        | price(top, dur)                                  |
|-------------------------|-------------------|--------------------------------------------------|
| ``linear``              | ``tau`` (s)       | ``top * (tau - dur) / tau``, 0 once dur >= tau   |
| ``stairstep_exponential`` | ``cut``, ``step`` (s) | ``top * cut ** floor(dur / step)``           |
| ``exponential``         | ``cut`` (per s)   | ``top * cut ** dur``                             |

Each curve is a frozen config record (the spec's ``curve = {kind = "...", ...}`` table) with
``factor(dur)``: price / top, vectorised over an array of durations.  Defaults: the
stairstep is ETH-B's production setting (cut 0.99 per 60 s, mechanisms.md 3.3); no
production ilk in the reference uses the other two, so their defaults are derived from it
and say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from cascadelab.schema import SpecError, from_dict, param

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LinearDecrease:
    """Price falls linearly from top to zero over ``tau`` seconds (abaci.sol LinearDecrease)."""

    kind_id: ClassVar[str] = "linear"
    tau: float = param(9000.0, lo=0.0, lo_open=True,
                       doc="seconds from top to zero; default 9000 s reaches ETH-B's cusp 0.4 exactly at its tail 90 min "
                           "(derived: no production linear setting in the reference)")

    def factor(self, dur: FloatArray) -> FloatArray:
        dur = np.asarray(dur, dtype=np.float64)
        return np.where(dur >= self.tau, 0.0, (self.tau - dur) / self.tau)


@dataclass(frozen=True)
class StairstepExponentialDecrease:
    """Price multiplied by ``cut`` once every ``step`` seconds (abaci.sol StairstepExponentialDecrease)."""

    kind_id: ClassVar[str] = "stairstep_exponential"
    cut: float = param(0.99, lo=0.0, hi=1.0, doc="price multiplier per step (ETH-B, YFI-A: 0.99)")
    step: float = param(60.0, lo=0.0, lo_open=True, doc="seconds between price cuts (ETH-B 60 s, YFI-A 90 s)")

    def factor(self, dur: FloatArray) -> FloatArray:
        dur = np.asarray(dur, dtype=np.float64)
        return self.cut ** np.floor(dur / self.step)


@dataclass(frozen=True)
class ExponentialDecrease:
    """Price multiplied by ``cut`` every second, continuously (abaci.sol ExponentialDecrease)."""

    kind_id: ClassVar[str] = "exponential"
    cut: float = param(0.99 ** (1 / 60), lo=0.0, hi=1.0,
                       doc="price multiplier per second; default 0.99**(1/60) = ETH-B's 1% per minute made continuous "
                           "(derived)")

    def factor(self, dur: FloatArray) -> FloatArray:
        dur = np.asarray(dur, dtype=np.float64)
        return self.cut ** dur


CURVES: dict[str, type] = {c.kind_id: c for c in (LinearDecrease, StairstepExponentialDecrease, ExponentialDecrease)}
"""Curve id -> config class (the ``kind`` of a ``curve`` table)."""

Curve = LinearDecrease | StairstepExponentialDecrease | ExponentialDecrease


class CurveField:
    """Annotation for a curve config: the ``kind`` key picks the class (like mechanisms do)."""

    @staticmethod
    def __spec_dispatch__(value: Any, path: str) -> Any:
        if isinstance(value, tuple(CURVES.values())):
            return value
        if not isinstance(value, dict):
            raise SpecError(path, f"expected a table like {{ kind = \"stairstep_exponential\", cut = 0.99, step = 60 }}, "
                                  f"got {value!r}")
        kind = value.get("kind")
        if kind not in CURVES:
            raise SpecError(f"{path}.kind", f"unknown curve {kind!r}; one of {', '.join(CURVES)}")
        return from_dict(CURVES[kind], {k: v for k, v in value.items() if k != "kind"}, path)

