"""From a validated sweep spec to the runs it implies, checked before a single run starts.

``build_plan`` resolves the scenario, turns every mechanism entry into dotted-path overrides,
checks that every parameter path exists in the scenario and that the scenario still loads at
the parameters' midpoints under every mechanism (a bad path fails here, once, not in every
run), draws the design's sample matrix and packs what workers need into a :class:`Study`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cascadelab.record import METRICS
from cascadelab.schema import SpecError, to_dict
from cascadelab.spec import DEFAULT_SPEC_PATH, _list_index, load_spec, read_toml, spec_to_dict
from cascadelab.sweep.designs import block_size, problem, sample
from cascadelab.sweep.spec import SweepConfig
from cascadelab.sweep.work import Study

__all__ = ["Plan", "build_plan", "lookup", "resolve_scenario"]

SCENARIO_DESIGN = "baseline"
"""Mechanism label of the runs of a sweep that lists no mechanisms (the scenario's own, or a function)."""


@dataclass(frozen=True)
class Plan:
    """A sweep ready to run: its spec, sample matrix and worker payload."""

    config: SweepConfig
    study: Study
    x: np.ndarray
    scenario_path: str | None

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def mechanism_names(self) -> list[str]:
        return [name for name, _ in self.study.mechanisms]

    @property
    def n_runs(self) -> int:
        return self.n_rows * self.config.replicates * len(self.study.mechanisms)

    def run_keys(self) -> Iterator[tuple[int, int, int]]:
        """(row, replicate, mechanism index) of every run, row-major: runs sharing a seed are adjacent."""
        for row in range(self.n_rows):
            for rep in range(self.config.replicates):
                for m in range(len(self.study.mechanisms)):
                    yield row, rep, m

    def manifest(self) -> dict[str, Any]:
        """What the study is (the store adds versions, commit and the sample file's hash)."""
        cfg = self.config
        return {
            "sweep": to_dict(cfg),
            "scenario_path": self.scenario_path,
            "scenario": self.study.scenario,
            "function": self.study.function or None,
            "problem": problem(cfg),
            "method": cfg.method,
            "root_seed": self.study.root_seed,
            "n_rows": self.n_rows,
            "replicates": cfg.replicates,
            "block_size": block_size(cfg),
            "n_runs": self.n_runs,
            "mechanisms": [{"name": n, "overrides": dict(o)} for n, o in self.study.mechanisms],
            "parameters": [{"name": p.label, "path": p.path, "dist": p.dist, "bounds": list(p.bounds),
                            "integer": i} for p, i in zip(cfg.params, self.study.integer, strict=True)],
            "outputs": list(cfg.outputs),
            "objectives": list(cfg.objectives_or_default),
            "seed_rule": (f"run seed = cascadelab.rng.run_seed(root_seed, {'0' if cfg.seeds == 'common' else 'row'}, "
                          "replicate), the same for every mechanism (common random numbers); "
                          "sample seed = cascadelab.rng.sampler_seed(root_seed)"),
        }


def resolve_scenario(name: str, base: Path) -> Path:
    """The scenario file: 'default' is the built-in one; else relative to the sweep file, then to the cwd."""
    if name == "default":
        return DEFAULT_SPEC_PATH
    p = Path(name)
    candidates = [p] if p.is_absolute() else [base / p, Path.cwd() / p]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise SpecError("sweep.scenario", f"file not found: {name} (tried {', '.join(str(c) for c in candidates)})")


def lookup(tree: Any, path: str) -> Any:
    """The value at a dotted path in a resolved spec dict; SpecError naming the missing part and what exists."""
    node = tree
    parts = path.split(".")
    for depth, key in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, Mapping):
            if key not in node:
                raise SpecError(where, f"not in the scenario; keys here: {', '.join(map(str, node)) or 'none'}")
            node = node[key]
        elif isinstance(node, list | tuple):
            node = node[_list_index(list(node), key, where)]
        else:
            raise SpecError(where, f"{'.'.join(parts[:depth])} is a value ({node!r}), not a table")
    return node


def _mechanism_overrides(cfg: SweepConfig, scenario: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    from mechanisms.registry import REGISTRY

    if not cfg.variants:
        return [(SCENARIO_DESIGN, {})]
    out = []
    protocols = scenario["protocols"]
    for i, v in enumerate(cfg.variants):
        where = f"sweep.mechanisms.{i}"
        overrides: dict[str, Any] = {}
        if v.kind:
            if v.kind not in REGISTRY:
                raise SpecError(f"{where}.kind", f"unknown mechanism {v.kind!r}; registered: "
                                                 f"{', '.join(sorted(REGISTRY))} (see `cascadelab mechanisms`)")
            for p in v.protocols or tuple(protocols):
                if p not in protocols:
                    raise SpecError(f"{where}.protocols", f"unknown protocol {p!r}; defined: {', '.join(protocols)}")
                current = protocols[p]["mechanism"]
                table = dict(current) if current.get("kind") == v.kind else {"kind": v.kind}
                table.update(v.params)
                overrides[f"protocols.{p}.mechanism"] = table
        overrides.update(v.overrides)
        try:
            load_spec(scenario, overrides)
        except SpecError as exc:
            raise SpecError(where, f"mechanism {v.label!r} does not fit the scenario: {exc}") from None
        out.append((v.label, overrides))
    return out


def _check_params(cfg: SweepConfig, scenario: Mapping[str, Any], mechs: list[tuple[str, dict[str, Any]]]
                  ) -> tuple[bool, ...]:
    """Every path exists and is a number under every mechanism; the scenario loads at the midpoints."""
    integer: list[bool] | None = None
    for name, overrides in mechs:
        tree = spec_to_dict(load_spec(scenario, overrides))
        kinds = []
        for i, p in enumerate(cfg.params):
            context = f" (mechanism {name!r})" if name != SCENARIO_DESIGN else ""
            try:
                value = lookup(tree, p.path)
            except SpecError as exc:
                raise SpecError(f"sweep.params.{i}.path", f"{p.path!r}{context}: {exc}") from None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SpecError(f"sweep.params.{i}.path", f"{p.path!r}{context} is {value!r}, not a number")
            kinds.append(isinstance(value, int))
        if integer is None:
            integer = kinds  # from the first mechanism; a path's type does not depend on the mechanism
        mid = {p.path: (round(p.midpoint()) if k else p.midpoint()) for p, k in zip(cfg.params, kinds, strict=True)}
        try:
            load_spec(scenario, {**overrides, **mid})
        except SpecError as exc:
            raise SpecError("sweep.params", f"the scenario does not load at the parameters' midpoints"
                                            f"{context}: {exc}") from None
    return tuple(integer or ())


def _check_outputs(cfg: SweepConfig, scenario: Mapping[str, Any]) -> None:
    groups = set(scenario["protocols"]) | set(scenario["assets"])
    for i, out in enumerate(cfg.outputs):
        owner, _, metric = out.rpartition(".")
        if out in METRICS or (owner in groups and metric in METRICS):
            continue
        raise SpecError(f"sweep.outputs.{i}", f"unknown output {out!r}; one of {', '.join(METRICS)}, "
                                              f"or PROTOCOL.METRIC / ASSET.METRIC for {', '.join(sorted(groups))}")


def build_plan(cfg: SweepConfig, base: Path) -> Plan:
    """Resolve, validate and sample a sweep (see the module docstring)."""
    if cfg.function:
        names = tuple(p.path for p in cfg.params)
        study = Study(names=names, integer=(False,) * len(names), mechanisms=((SCENARIO_DESIGN, {}),),
                      root_seed=cfg.seed or 0, function=cfg.function, common_seeds=cfg.seeds == "common")
        if cfg.variants:
            raise SpecError("sweep.mechanisms", "a function model has no mechanisms to compare")
        _function_check(cfg.function)
        return Plan(cfg, study, sample(cfg, study.root_seed), None)
    path = resolve_scenario(cfg.scenario, base)
    raw = read_toml(path)
    try:
        load_spec(raw)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc.path}", exc.message) from None
    try:
        scenario = spec_to_dict(load_spec(raw, cfg.overrides))
    except SpecError as exc:
        raise SpecError(f"sweep.overrides: {exc.path}", exc.message) from None
    mechs = _mechanism_overrides(cfg, scenario)
    integer = _check_params(cfg, scenario, mechs)
    _check_outputs(cfg, scenario)
    root = cfg.seed if cfg.seed is not None else int(scenario["run"]["seed"])
    study = Study(names=tuple(p.path for p in cfg.params), integer=integer, mechanisms=tuple(mechs),
                  root_seed=root, scenario=scenario, common_seeds=cfg.seeds == "common")
    return Plan(cfg, study, sample(cfg, root), str(path))


def _function_check(entry: str) -> None:
    from cascadelab.sweep.work import _function

    try:
        fn = _function(entry)
    except (ImportError, AttributeError) as exc:
        raise SpecError("sweep.function", f"cannot load {entry!r}: {exc}") from None
    if not callable(fn):
        raise SpecError("sweep.function", f"{entry!r} is not callable")
