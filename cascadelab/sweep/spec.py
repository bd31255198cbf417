"""The sweep spec (DESIGN.md section 6): a scenario, a design, the parameters and the mechanisms.

A sweep file holds one ``[sweep]`` table::

    [sweep]
    scenario = "../scenarios/eth_crash.toml"   # relative to this file (or the cwd); "default" = built-in
    method = "sobol"                           # sobol | morris | fast | latin | grid
    n = 256
    replicates = 4
    mechanisms = ["fixed_bonus", "dutch_auction"]                 # compared on identical draws
    outputs = ["bad_debt_usd", "max_price_impact", "liquidated_usd"]
    overrides = { "run.steps" = 720 }                             # fixed changes to the scenario
    [[sweep.params]]
    path = "assets.ETH.sigma"                  # a dotted override path of load_spec
    bounds = [0.3, 1.5]
    dist = "unif"                              # SALib's dists

It is read with the same :func:`cascadelab.schema.from_dict` machinery as a scenario, so
every error names its key path (``sweep.params.1.bounds``).  What SALib assumes but checks
poorly is checked here: N a power of two for Sobol, an even number of Morris levels,
N > 4 M^2 for FAST, at least two parameters, bounds that fit their distribution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascadelab.schema import SpecError, from_dict, param
from cascadelab.spec import read_toml

__all__ = ["DISTS", "METHODS", "MechanismVariant", "ParamSpec", "SweepConfig", "load_sweep"]

METHODS = ("sobol", "morris", "fast", "latin", "grid")
"""Design ids: SALib's samplers (Saltelli/Sobol', Morris, eFAST, Latin hypercube) and a full grid."""

DISTS: dict[str, tuple[int, ...]] = {
    "unif": (2,), "logunif": (2,), "triang": (3,), "norm": (2,), "truncnorm": (4,), "lognorm": (2,),
    "weibull": (2, 3),
}
"""SALib's distributions and how many ``bounds`` values each takes."""

BOUNDS_MEANING = {
    "unif": "[low, high]", "logunif": "[low, high] (both > 0)", "triang": "[low, high, peak as a fraction of the width]",
    "norm": "[mean, sd]", "truncnorm": "[low, high, mean, sd]", "lognorm": "[mean of ln, sd of ln]",
    "weibull": "[shape, scale] or [shape, scale, location]",
}

DEFAULT_OBJECTIVES = ("bad_debt_usd", "max_price_impact")
"""Outputs the mechanism comparison minimises when ``objectives`` is not given (those present)."""


@dataclass(frozen=True)
class ParamSpec:
    """One uncertain input: where it goes in the scenario and how it is distributed."""

    path: str = param(doc="dotted override path into the scenario (for a function model: its argument name)")
    bounds: tuple[float, ...] = param(doc="SALib bounds; their meaning depends on dist")
    dist: str = param("unif", choices=tuple(DISTS), doc="SALib distribution")
    name: str = param("", doc="short label for tables and figures (default: the path)")

    def check(self, path: str) -> None:
        if not self.path.strip():
            raise SpecError(f"{path}.path", "must name a dotted spec path, e.g. assets.ETH.sigma")
        if len(self.bounds) not in DISTS[self.dist]:
            raise SpecError(f"{path}.bounds", f"dist {self.dist!r} takes {BOUNDS_MEANING[self.dist]}, "
                                              f"got {len(self.bounds)} value(s)")
        if not all(math.isfinite(b) for b in self.bounds):
            raise SpecError(f"{path}.bounds", "values must be finite")
        try:  # SALib's own transform is the authority on what bounds fit a distribution
            transform([[0.5]], [self])
        except ValueError as exc:
            raise SpecError(f"{path}.bounds", " ".join(str(exc).split())) from None

    @property
    def label(self) -> str:
        return self.name or self.path

    def midpoint(self) -> float:
        """The distribution's median: the value every path is validated with before a sweep starts."""
        return float(transform([[0.5]], [self])[0, 0])


def transform(unit: Any, params: list[ParamSpec] | tuple[ParamSpec, ...]) -> Any:
    """Map points of the unit cube to parameter values with SALib's scaling (ppf for non-uniform dists)."""
    import numpy as np
    from SALib.util import scale_samples

    problem = {"num_vars": len(params), "bounds": [list(p.bounds) for p in params],
               "dists": [p.dist for p in params]}
    return scale_samples(np.array(unit, dtype=float), problem)


@dataclass(frozen=True)
class MechanismVariant:
    """A named liquidation design compared on the same draws as the others.

    ``kind`` (+ ``params``) sets the mechanism of every protocol (or those in ``protocols``):
    a protocol that already uses that kind keeps its scenario parameters with ``params``
    applied on top; otherwise the registry's defaults with ``params``.  ``overrides`` sets
    anything else by dotted path (applied after ``kind``).
    """

    name: str = param("", doc="label of the design in results (default: kind)")
    kind: str = param("", doc="registered mechanism id")
    params: dict[str, Any] = param(default_factory=dict, doc="mechanism parameters for kind")
    protocols: tuple[str, ...] = param((), doc="protocols the kind applies to (default: all)")
    overrides: dict[str, Any] = param(default_factory=dict, doc="further dotted-path overrides")

    def check(self, path: str) -> None:
        if not self.kind and not self.overrides:
            raise SpecError(path, "give kind (a mechanism id) and/or overrides")
        if (self.params or self.protocols) and not self.kind:
            raise SpecError(f"{path}.kind", "params and protocols need kind")
        if not (self.name or self.kind):
            raise SpecError(f"{path}.name", "a variant without kind needs a name")

    @property
    def label(self) -> str:
        return self.name or self.kind


class MechanismEntry:
    """Annotation for a ``mechanisms`` entry: a bare id ``"dutch_auction"`` or a MechanismVariant table."""

    @staticmethod
    def __spec_dispatch__(value: Any, path: str) -> MechanismVariant:
        if isinstance(value, str):
            value = {"kind": value}
        return from_dict(MechanismVariant, value, path)


@dataclass(frozen=True)
class SweepConfig:
    """A sensitivity study: the design, its size, its inputs and outputs (module docstring)."""

    scenario: str = param("", doc="scenario TOML relative to the sweep file (or the cwd); 'default': built-in")
    function: str = param("", doc="'module:function' to evaluate instead of a scenario (harness checks, reduced models)")
    method: str = param("sobol", choices=METHODS, doc="design")
    n: int = param(64, lo=1, doc="sobol/latin/fast: base samples; morris: trajectories; grid: points per parameter")
    replicates: int = param(1, lo=1, hi=100_000, doc="seeds per design row (separates seed noise from parameter effects)")
    seed: int | None = param(None, lo=0, doc="root seed (default: the scenario's run.seed; 0 for a function)")
    seeds: str = param("per_row", choices=("per_row", "common"),
                       doc="per_row: run seed run_seed(root, row, replicate) (DESIGN section 7); common: "
                           "run_seed(root, 0, replicate) for every row, so seed noise cannot pose as a parameter effect")
    outputs: tuple[str, ...] = param(("bad_debt_usd", "max_price_impact", "liquidated_usd"), doc="metrics analysed")
    objectives: tuple[str, ...] = param((), doc="outputs the mechanism comparison minimises "
                                              "(default: bad_debt_usd and max_price_impact when analysed)")
    mechanisms: tuple[MechanismEntry, ...] = param((), doc="designs compared on identical draws (common random numbers)")
    params: tuple[ParamSpec, ...] = param((), doc="uncertain inputs")
    overrides: dict[str, Any] = param(default_factory=dict, doc="fixed dotted-path changes to the scenario")
    calc_second_order: bool = param(True, doc="sobol: sample and estimate second-order indices S2")
    levels: int = param(4, lo=2, doc="morris: number of grid levels (even)")
    fast_m: int = param(4, lo=1, doc="fast: interference parameter M")
    num_resamples: int = param(200, lo=10, doc="bootstrap resamples for confidence intervals")
    conf_level: float = param(0.95, lo=0.5, hi=1.0, hi_open=True, doc="confidence level of every interval")
    chunk_size: int = param(0, lo=0, doc="runs per task (0: adaptive, about one second of work per task)")

    def check(self, path: str) -> None:
        at = (lambda key: f"{path}.{key}") if path else (lambda key: key)
        if bool(self.scenario) == bool(self.function):
            raise SpecError(at("scenario"), "give exactly one of scenario (a TOML path or 'default') and function")
        if self.function and ":" not in self.function:
            raise SpecError(at("function"), f"{self.function!r} must look like 'package.module:function'")
        d = len(self.params)
        if d < 2:
            raise SpecError(at("params"), f"at least two parameters are needed for sensitivity indices, got {d}")
        for key, values in (("params", [p.label for p in self.params]), ("params", [p.path for p in self.params]),
                            ("mechanisms", [m.label for m in self.mechanisms])):
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise SpecError(at(key), f"duplicate name(s) {', '.join(dup)}")
        if not self.outputs:
            raise SpecError(at("outputs"), "name at least one output")
        for i, o in enumerate(self.objectives):
            if o not in self.outputs:
                raise SpecError(at(f"objectives.{i}"), f"{o!r} is not among outputs ({', '.join(self.outputs)})")
        n = self.n
        if self.method == "sobol" and (n < 2 or n & (n - 1)):
            lower = 1 << max(1, n.bit_length() - 1)
            raise SpecError(at("n"), f"sobol needs N a power of two (Sobol' sequence balance), got {n}; "
                                     f"use {lower} or {2 * lower}")
        if self.method == "morris":
            if self.levels % 2:
                raise SpecError(at("levels"), f"morris needs an even number of levels, got {self.levels}")
            if n < 2:
                raise SpecError(at("n"), "morris needs at least 2 trajectories")
        if self.method == "fast" and n <= 4 * self.fast_m ** 2:
            raise SpecError(at("n"), f"fast needs N > 4 M^2 = {4 * self.fast_m ** 2} (M = fast_m = {self.fast_m}), got {n}")
        if self.method == "latin" and n < 2:
            raise SpecError(at("n"), "latin needs N >= 2")
        if self.method == "grid":
            if n < 2:
                raise SpecError(at("n"), "grid needs at least 2 points per parameter")
            if n ** d > 10_000_000:
                raise SpecError(at("n"), f"a grid of {n}^{d} = {n ** d:,} rows is too large; use sobol or latin")

    @property
    def objectives_or_default(self) -> tuple[str, ...]:
        return self.objectives or tuple(o for o in DEFAULT_OBJECTIVES if o in self.outputs)

    @property
    def variants(self) -> tuple[MechanismVariant, ...]:
        return self.mechanisms  # type: ignore[return-value]  # MechanismEntry converts to MechanismVariant


@dataclass(frozen=True)
class SweepFile:
    """A sweep TOML file: one [sweep] table."""

    sweep: SweepConfig = param(doc="the study")


def load_sweep(source: str | Path | Mapping[str, Any]) -> tuple[SweepConfig, Path]:
    """Read and validate a sweep spec; returns it with the directory its relative paths start from."""
    if isinstance(source, Mapping):
        raw, base = dict(source), Path.cwd()
    else:
        raw, base = read_toml(source), Path(source).resolve().parent
    return from_dict(SweepFile, raw, "").sweep, base
