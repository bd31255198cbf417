"""The scenario spec: a frozen dataclass tree read from TOML (DESIGN.md section 6).

``load_spec(path | dict, overrides)`` reads a TOML file (or a dict), applies dotted-path
overrides (``protocols.lender_a.mechanism.bonus=0.08``; list entries are addressed by
their ``name``/``symbol`` or by index) and validates every key: an unknown key, a wrong
type or an out-of-range value raises :class:`SpecError` naming the key path and the
allowed range.  Units: prices and values in USD, time in steps of ``run.dt_seconds``,
volatilities annualised.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cascadelab.schema import SpecError, from_dict, param, to_dict

__all__ = [
    "SpecError", "Spec", "load_spec", "apply_overrides", "parse_overrides", "spec_to_dict",
    "DEFAULT_SPEC_PATH", "USD",
]

USD = "USD"
"""The numeraire: debt denominated in it has price 1 and no venue."""

DEFAULT_SPEC_PATH = Path(__file__).parent / "data" / "default.toml"

Knots = tuple[tuple[float, float], ...]


def _check_knots(knots: Knots, path: str, what: str) -> None:
    steps = [k[0] for k in knots]
    if steps and steps[0] != 0:
        raise SpecError(path, f"the first knot must be at step 0, got step {steps[0]:g}")
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise SpecError(path, "knot steps must be strictly increasing")
    if any(k[1] <= 0 for k in knots):
        raise SpecError(path, f"every knot {what} must be > 0")


@dataclass(frozen=True)
class RunConfig:
    """Horizon, step length and root seed."""

    steps: int = param(1440, lo=1, hi=100_000_000, doc="number of steps")
    dt_seconds: float = param(60.0, lo=0.0, lo_open=True, doc="seconds per step")
    seed: int = param(7, lo=0, doc="root seed of the run's seed tree")


@dataclass(frozen=True)
class AssetConfig:
    """A collateral (or debt) asset and its exogenous fundamental price process."""

    price: float = param(0.0, lo=0.0, doc="initial price in USD (omit for process='path': the path sets it)")
    process: str = param("gbm", choices=("gbm", "jump_diffusion", "path"), doc="fundamental price process")
    sigma: float = param(0.0, lo=0.0, hi=50.0, doc="annualised volatility (for 'path': noise around the path)")
    mu: float = param(0.0, lo=-100.0, hi=100.0, doc="annualised drift of the log price")
    jump_rate: float = param(0.0, lo=0.0, doc="jump_diffusion: expected jumps per year")
    jump_mean: float = param(0.0, lo=-5.0, hi=5.0, doc="jump_diffusion: mean log jump size")
    jump_sd: float = param(0.0, lo=0.0, hi=5.0, doc="jump_diffusion: sd of the log jump size")
    path: Knots = param((), doc="(step, price) knots, linear in between, flat after the last")

    def check(self, path: str) -> None:
        if self.process == "path":
            if not self.path:
                raise SpecError(f"{path}.path", "process='path' needs at least one (step, price) knot")
            _check_knots(self.path, f"{path}.path", "price")
            if self.price and not math.isclose(self.price, self.path[0][1]):
                raise SpecError(f"{path}.price", f"{self.price:g} differs from the path's price at step 0 "
                                f"({self.path[0][1]:g}); omit it or make them equal")
        elif self.price <= 0:
            raise SpecError(f"{path}.price", "missing or zero; an initial price > 0 is required")

    @property
    def initial_price(self) -> float:
        return self.path[0][1] if self.process == "path" else self.price


@dataclass(frozen=True)
class VenueConfig:
    """Where an asset is traded: price impact of trades and recovery toward the fundamental."""

    kind: str = param("constant_product", choices=("constant_product", "transient_impact", "none"))
    depth_usd: float = param(50_000_000.0, lo=0.0, lo_open=True,
                             doc="constant_product: pool value at the initial price; "
                                 "transient_impact: sell volume (USD) that moves the price 10%")
    fee: float = param(0.003, lo=0.0, hi=0.1, doc="fee on the input amount")
    recovery_halflife_steps: float = param(30.0, lo=0.0, lo_open=True,
                                           doc="half-life of the impact's decay (inf: never recovers)")
    impact: str = param("sqrt", choices=("sqrt", "linear"), doc="transient_impact: shape of the impact curve")


@dataclass(frozen=True)
class OracleConfig:
    """What price a protocol sees: instant, Chainlink-style deviation/heartbeat, or a TWAP; with lag."""

    kind: str = param("instant", choices=("instant", "deviation", "twap"))
    threshold: float = param(0.005, lo=0.0, hi=1.0, hi_open=True, doc="deviation: relative move that triggers an update")
    heartbeat_steps: int = param(60, lo=1, doc="deviation: update at least this often")
    lag_steps: int = param(0, lo=0, doc="steps between the market price and what the oracle reports")
    window_steps: int = param(30, lo=1, doc="twap: averaging window")


@dataclass(frozen=True)
class GasConfig:
    """Gas price: a base level (or scripted path) that spikes with the gas token's recent move."""

    base_gwei: float = param(20.0, lo=0.0, lo_open=True, doc="gas price in calm markets")
    sensitivity: float = param(0.0, lo=0.0, doc="added multiple of base per 1% |move| of the token over window_steps")
    window_steps: int = param(60, lo=1, doc="look-back for the move that drives the spike")
    path: Knots = param((), doc="(step, gwei) knots replacing base_gwei when given")
    max_gwei: float = param(10_000.0, lo=0.0, lo_open=True, doc="cap on the gas price")
    token: str = param("ETH", doc="asset gas is paid in (if it is not an asset, token_price_usd is used)")
    token_price_usd: float = param(2000.0, lo=0.0, lo_open=True, doc="gas token price when it is not a modelled asset")

    def check(self, path: str) -> None:
        _check_knots(self.path, f"{path}.path", "gas price")


class MechanismField:
    """Annotation for a mechanism config: the registry picks the config class by its ``kind`` key."""

    @staticmethod
    def __spec_dispatch__(value: Any, path: str) -> Any:
        from mechanisms.registry import parse_config

        return parse_config(value, path)


def _default_mechanism() -> Any:
    from mechanisms.registry import parse_config

    return parse_config({"kind": "fixed_bonus"}, "mechanism")


@dataclass(frozen=True)
class MarketConfig:
    """A protocol's risk parameters for one collateral asset."""

    liquidation_threshold: float = param(0.825, lo=0.0, hi=1.0, lo_open=True,
                                         doc="collateral value share counted toward health (Aave LT, 1/mat for Maker)")


@dataclass(frozen=True)
class ProtocolConfig:
    """A lending protocol: its liquidation mechanism, oracle, markets and debt asset."""

    mechanism: MechanismField = param(default_factory=_default_mechanism)
    oracle: OracleConfig = param(default_factory=OracleConfig)
    markets: dict[str, MarketConfig] = param(default_factory=dict)
    debt_asset: str = param(USD, doc="asset the debt is denominated in ('USD' = numeraire, price 1)")


@dataclass(frozen=True)
class PositionConfig:
    """One explicit position (exact tests, replays)."""

    protocol: str = param(doc="protocol name")
    collateral: dict[str, float] = param(default_factory=dict, doc="units of each collateral asset")
    debt: float = param(0.0, lo=0.0, doc="debt in units of the debt asset")
    name: str = param("", doc="optional label")
    behaviour: str = param("", doc="optional population name whose behaviour this position follows")

    def check(self, path: str) -> None:
        for asset, amount in self.collateral.items():
            if amount < 0 or not math.isfinite(amount):
                raise SpecError(f"{path}.collateral.{asset}", f"{amount!r} must be finite and >= 0")


@dataclass(frozen=True)
class DistConfig:
    """A distribution to draw a per-position quantity from."""

    dist: str = param("constant", choices=("constant", "uniform", "lognormal", "normal"))
    value: float = param(1.0, doc="constant")
    low: float = param(-math.inf, doc="uniform lower bound; lower clip for the others")
    high: float = param(math.inf, doc="uniform upper bound; upper clip for the others")
    median: float = param(1.0, lo=0.0, lo_open=True, doc="lognormal median")
    sigma: float = param(1.0, lo=0.0, doc="lognormal sd of log")
    mean: float = param(0.0, doc="normal mean")
    sd: float = param(1.0, lo=0.0, doc="normal sd")

    def check(self, path: str) -> None:
        if self.dist == "uniform" and not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise SpecError(path, "dist='uniform' needs finite low and high")
        if self.low > self.high:
            raise SpecError(f"{path}.low", f"{self.low:g} exceeds high {self.high:g}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values, clipped to [low, high]."""
        if self.dist == "constant":
            x = np.full(n, self.value)
        elif self.dist == "uniform":
            x = rng.uniform(self.low, self.high, n)
        elif self.dist == "lognormal":
            x = self.median * np.exp(self.sigma * rng.standard_normal(n))
        else:
            x = self.mean + self.sd * rng.standard_normal(n)
        return np.clip(x, self.low, self.high)


@dataclass(frozen=True)
class BehaviourConfig:
    """How a borrower cohort reacts when its health falls (DESIGN.md step 4)."""

    kind: str = param("passive", choices=("passive", "reactive"))
    action: str = param("deleverage", choices=("top_up", "repay", "deleverage"),
                        doc="top_up adds collateral, repay pays debt from outside, deleverage sells collateral to repay")
    trigger_health: float = param(1.1, lo=0.0, lo_open=True, doc="react when oracle health falls below this")
    target_health: float = param(1.3, lo=0.0, lo_open=True, doc="restore health to this level")
    probability: float = param(0.1, lo=0.0, hi=1.0, doc="chance per step that an eligible position acts")
    latency_steps: int = param(5, lo=0, doc="steps below the trigger before a position can act")
    budget_frac: float = param(0.5, lo=0.0, doc="top_up/repay: outside funds per position as a fraction of its initial collateral value")

    def check(self, path: str) -> None:
        if self.kind == "reactive" and self.target_health <= self.trigger_health:
            raise SpecError(f"{path}.target_health",
                            f"{self.target_health:g} must exceed trigger_health {self.trigger_health:g}")


@dataclass(frozen=True)
class PopulationConfig:
    """A generated cohort of positions: sizes and health drawn from distributions."""

    protocol: str = param(doc="protocol name")
    count: int = param(1000, lo=0, doc="number of positions")
    collateral_asset: str = param("ETH")
    collateral_usd: DistConfig = param(default_factory=lambda: DistConfig(dist="lognormal", median=20_000.0, sigma=1.2))
    health: DistConfig = param(default_factory=lambda: DistConfig(dist="uniform", low=1.05, high=2.5),
                               doc="initial health at the initial price")
    behaviour: BehaviourConfig = param(default_factory=BehaviourConfig)
    cohorts: int = param(1, lo=1, doc="Mesa borrower agents the population is split into")

    def check(self, path: str) -> None:
        if self.health.dist != "constant" and self.health.low <= 0:
            raise SpecError(f"{path}.health.low", "must be > 0 (health is a ratio of values)")
        if self.health.dist == "constant" and self.health.value <= 0:
            raise SpecError(f"{path}.health.value", "must be > 0")


@dataclass(frozen=True)
class KeeperConfig:
    """One homogeneous group of keepers (DESIGN.md step 6)."""

    count: int = param(10, lo=0)
    capital_usd: float = param(2_000_000.0, lo=0.0, doc="capital per keeper; locked until seized collateral is sold")
    gas_units: float = param(500_000.0, lo=0.0, doc="gas per liquidation transaction")
    min_profit_usd: float = param(0.0, doc="take an offer when expected profit after impact and gas >= this")
    latency_steps: int = param(0, lo=0, doc="steps an offer must be open before this keeper sees it")
    max_gas_gwei: float = param(math.inf, lo=0.0, lo_open=True, doc="keeper cannot get included above this gas price")
    max_fills_per_step: int = param(50, lo=1, doc="transactions per keeper per step (block capacity)")
    strategy: str = param("default", doc="bidding strategy id (agents.liquidators.STRATEGIES)")
    margin: float = param(0.0, lo=0.0, hi=1.0, doc="strategic keepers: required profit as a fraction of the payment")


@dataclass(frozen=True)
class LiquidatorsConfig(KeeperConfig):
    """The keepers: the main group given by the top-level keys, plus optional named ``groups``.

    A group (``[liquidators.groups.NAME]``) takes every key it does not set from the top level,
    so ``groups.congested = { count = 20, max_gas_gwei = 100 }`` adds twenty keepers like the
    main ones that cannot transact above 100 gwei.
    """

    rounds_per_step: int = param(1, lo=1, hi=100, doc="offer/bid/settle rounds per step")
    groups: dict[str, KeeperConfig] = param(default_factory=dict, doc="further keeper groups by name")

    def all_groups(self) -> list[tuple[str, KeeperConfig]]:
        """(name, config) of every group, the main one (named 'main') first."""
        return [("main", self), *self.groups.items()]

    @property
    def total_count(self) -> int:
        return sum(cfg.count for _, cfg in self.all_groups())


def _inherit_keeper_groups(raw: dict[str, Any]) -> None:
    """Fill each ``liquidators.groups.NAME`` with the top-level keys it does not set (in place)."""
    liq = raw.get("liquidators")
    if not isinstance(liq, dict) or not isinstance(liq.get("groups"), dict):
        return
    shared = {k: v for k, v in liq.items() if k not in ("groups", "rounds_per_step")}
    for name, group in liq["groups"].items():
        if isinstance(group, dict):
            liq["groups"][name] = {**shared, **group}


@dataclass(frozen=True)
class ArbitrageConfig:
    """Arbitrageurs pull venue prices back toward the fundamental."""

    capital_usd_per_step: float = param(math.inf, lo=0.0, doc="max USD traded per venue per step (inf: unlimited)")


@dataclass(frozen=True)
class NoiseConfig:
    """Uninformed traders on one venue: signed USD volume ~ Normal(0, volume_usd) each step."""

    volume_usd: float = param(0.0, lo=0.0)


@dataclass(frozen=True)
class Spec:
    """A whole scenario."""

    run: RunConfig = param(default_factory=RunConfig)
    assets: dict[str, AssetConfig] = param(default_factory=dict)
    correlation: dict[str, dict[str, float]] = param(default_factory=dict,
                                                     doc="correlation.A.B = rho between log returns of A and B")
    venues: dict[str, VenueConfig] = param(default_factory=dict)
    gas: GasConfig = param(default_factory=GasConfig)
    protocols: dict[str, ProtocolConfig] = param(default_factory=dict)
    positions: tuple[PositionConfig, ...] = param(())
    populations: dict[str, PopulationConfig] = param(default_factory=dict)
    liquidators: LiquidatorsConfig = param(default_factory=LiquidatorsConfig)
    arbitrageurs: ArbitrageConfig = param(default_factory=ArbitrageConfig)
    noise: dict[str, NoiseConfig] = param(default_factory=dict)

    def check(self, path: str) -> None:
        assets = list(self.assets)
        if not assets:
            raise SpecError("assets", "at least one asset is required")
        if USD in self.assets:
            raise SpecError(f"assets.{USD}", "USD is the numeraire and cannot be an asset")
        if not self.protocols:
            raise SpecError("protocols", "at least one protocol is required")

        def need_asset(name: str, where: str, allow_usd: bool = False) -> None:
            if name not in self.assets and not (allow_usd and name == USD):
                allowed = assets + ([USD] if allow_usd else [])
                raise SpecError(where, f"unknown asset {name!r}; defined: {', '.join(allowed)}")

        def need_protocol(name: str, where: str) -> None:
            if name not in self.protocols:
                raise SpecError(where, f"unknown protocol {name!r}; defined: {', '.join(self.protocols)}")

        for a in self.venues:
            need_asset(a, f"venues.{a}")
        for a in self.noise:
            need_asset(a, f"noise.{a}")
            if self.venue(a).kind == "none" and self.noise[a].volume_usd > 0:
                pass  # noise on a venue without impact is allowed and harmless
        for a, row in self.correlation.items():
            need_asset(a, f"correlation.{a}")
            for b, rho in row.items():
                need_asset(b, f"correlation.{a}.{b}")
                if not -1.0 <= rho <= 1.0:
                    raise SpecError(f"correlation.{a}.{b}", f"{rho:g} is out of range; allowed [-1, 1]")
        corr = self.correlation_matrix()
        if np.linalg.eigvalsh(corr).min() < -1e-10:
            raise SpecError("correlation", "the correlation matrix is not positive semi-definite")
        for p, proto in self.protocols.items():
            need_asset(proto.debt_asset, f"protocols.{p}.debt_asset", allow_usd=True)
            for a in proto.markets:
                need_asset(a, f"protocols.{p}.markets.{a}")
        for i, pos in enumerate(self.positions):
            where = f"positions.{pos.name or i}"
            need_protocol(pos.protocol, f"{where}.protocol")
            for a in pos.collateral:
                self._need_market(pos.protocol, a, f"{where}.collateral.{a}")
            if pos.behaviour and pos.behaviour not in self.populations:
                raise SpecError(f"{where}.behaviour", f"unknown population {pos.behaviour!r}")
        for name, pop in self.populations.items():
            need_protocol(pop.protocol, f"populations.{name}.protocol")
            self._need_market(pop.protocol, pop.collateral_asset, f"populations.{name}.collateral_asset")
        from agents.liquidators import STRATEGIES

        for name, group in self.liquidators.all_groups():
            where = "liquidators" if name == "main" else f"liquidators.groups.{name}"
            if group.strategy not in STRATEGIES:
                raise SpecError(f"{where}.strategy",
                                f"unknown strategy {group.strategy!r}; one of {', '.join(sorted(STRATEGIES))}")

    def _need_market(self, protocol: str, asset: str, where: str) -> None:
        if asset not in self.assets:
            raise SpecError(where, f"unknown asset {asset!r}; defined: {', '.join(self.assets)}")
        if asset not in self.protocols[protocol].markets:
            raise SpecError(where, f"protocol {protocol!r} has no market for {asset!r} "
                                   f"(add protocols.{protocol}.markets.{asset})")

    @property
    def asset_names(self) -> list[str]:
        return list(self.assets)

    @property
    def protocol_names(self) -> list[str]:
        return list(self.protocols)

    def venue(self, asset: str) -> VenueConfig:
        """The asset's venue (default: a constant-product pool with default depth)."""
        return self.venues.get(asset, VenueConfig())

    def correlation_matrix(self) -> np.ndarray:
        """Symmetric correlation matrix in asset order (unlisted pairs are 0)."""
        names = self.asset_names
        idx = {a: i for i, a in enumerate(names)}
        corr = np.eye(len(names))
        for a, row in self.correlation.items():
            for b, rho in row.items():
                if a != b:
                    corr[idx[a], idx[b]] = corr[idx[b], idx[a]] = rho
        return corr


# ----------------------------------------------------------------------------- loading


def _list_index(items: list, key: str, path: str) -> int:
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and key in (item.get("name"), item.get("symbol")):
            return i
    if key.lstrip("-").isdigit() and -len(items) <= int(key) < len(items):
        return int(key) % len(items)
    raise SpecError(path, f"no list entry named {key!r} (address entries by name, symbol or index)")


def parse_value(text: str) -> Any:
    """Parse an override value as a TOML literal (``0.08``, ``true``, ``[1, 2]``, ``{kind = "x"}``); else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``PATH=VALUE`` strings (the CLI's ``--set``) into a dict of parsed values."""
    out: dict[str, Any] = {}
    for item in items:
        path, sep, value = item.partition("=")
        if not sep or not path.strip():
            raise SpecError(item, "an override must look like PATH=VALUE, e.g. protocols.lender_a.mechanism.bonus=0.08")
        out[path.strip()] = parse_value(value.strip())
    return out


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a copy of the raw spec dict with each dotted-path override set."""
    out = copy.deepcopy(dict(raw))
    for path, value in (overrides or {}).items():
        parts = path.split(".")
        node: Any = out
        for depth, key in enumerate(parts[:-1]):
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                node = node[_list_index(node, key, where)]
            elif isinstance(node, dict):
                nxt = node.get(key)
                if nxt is None:
                    nxt = node[key] = {}
                elif not isinstance(nxt, dict | list):
                    raise SpecError(where, f"is a value ({nxt!r}), not a table; cannot set {path}")
                node = nxt
            else:
                raise SpecError(where, f"cannot descend into {node!r}")
        last = parts[-1]
        if isinstance(node, list):
            node[_list_index(node, last, path)] = value
        else:
            node[last] = value
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning missing files and syntax errors into SpecErrors."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(str(path), "file not found")
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), f"invalid TOML: {exc}") from None


def load_spec(source: str | Path | Mapping[str, Any] | Spec | None = None,
              overrides: Mapping[str, Any] | Iterable[str] | None = None) -> Spec:
    """Load and validate a spec from a TOML path, a dict or a Spec (None: the built-in default)."""
    if isinstance(source, Spec):
        if not overrides:
            return source
        source = spec_to_dict(source)
    if source is None:
        source = DEFAULT_SPEC_PATH
    raw = read_toml(source) if isinstance(source, str | Path) else dict(source)
    if overrides is not None and not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    raw = apply_overrides(raw, overrides)
    _inherit_keeper_groups(raw)
    return from_dict(Spec, raw, "")


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The fully resolved spec (every default filled in) as plain data; ``load_spec`` of it gives ``spec``."""
    return to_dict(spec)
