"""The obvious Mesa implementation of a liquidation cascade: the reference cascadelab is timed against.

This is the model as a newcomer would write it in Mesa 3: one ``mesa.Agent`` per borrower
holding its collateral, debt and liquidation threshold as Python floats, a ``Pool`` object
for the constant-product venue, and liquidator agents that, every step, loop over every
borrower in Python, compute its health at the oracle price and liquidate it with a fixed
bonus and close factor, selling the seized collateral into the pool at once.  The crash
is a scripted path; arbitrage pulls the pool back toward the fundamental with a half-life.

It implements the *same rules* as cascadelab's equivalent configuration
(:func:`reference_spec`: one protocol, ``fixed_bonus``, ``instant`` oracle without lag, a
``constant_product`` venue, passive borrowers, a constant gas cost, ``sigma = 0``), so the
two must agree on liquidation count and bad debt.  Where cascadelab's semantics are cheap
to copy, they are copied exactly:

- step order: recovery (the pool's log-displacement from the fundamental decays by
  0.5 ** (1 / half-life)), oracle (the pool price), health, liquidation, sale, record;
- offer size: min(close_factor * debt, collateral value / (1 + bonus)); collateral handed
  over: pay * (1 + bonus) / oracle price, never more than the position holds;
- the keeper's decision (agents/liquidators.py): for each liquidatable borrower the best of
  the clip sizes 1, 1/2, ... 1/64 of the offer by expected profit = pool proceeds - payment -
  gas; offers with profit >= min_profit ranked by profit per dollar paid; taken in that
  order while the marginal profit (after the earlier ones' sales) still clears min_profit
  and the step's payments fit the capital, stopping at the first that fails;
- dust: collateral or debt below 1e-9 of the position's scale is zero (cascadelab.book.DUST),
  and debt left on a position without collateral is written off as bad debt at once.

Selling each clip at once instead of all together at the end of the step (as cascadelab
does) gives the same proceeds and the same pool state: constant-product proceeds depend
only on the start and end reserves (the fee leaves the pool, as in cascadelab's venue).
What remains different is floating-point rounding (reserves here, log-displacement there),
so a health or profit test exactly at its threshold can fall the other way; the harness
reports the relative differences and ``AGREEMENT_TOLERANCE`` bounds them.

The per-borrower Python loop is the point: its cost per step is proportional to the
number of borrowers times the number of liquidators, with a large constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import mesa
import numpy as np

DEFAULT_CRASH = [[0, 2000.0], [240, 1700.0], [480, 1650.0], [840, 1200.0], [1080, 1250.0], [1440, 1300.0]]
"""The default scenario's scripted ETH day (cascadelab/data/default.toml), without noise."""

DEPTH_USD_PER_POSITION = 30_000.0
"""Pool depth scales with the book so every size sees a comparable cascade."""

SIZE_FRACTIONS = (1.0, 0.5, 0.25, 0.125, 0.0625, 1 / 32, 1 / 64)
"""Clip sizes the keeper considers (agents.liquidators.SIZE_FRACTIONS)."""

DUST = 1e-9
"""cascadelab.book.DUST: relative amount below which collateral or debt counts as zero."""

AGREEMENT_TOLERANCE = {"liquidation_count": 1e-3, "bad_debt_usd": 1e-3}
"""Largest relative difference between reference and cascadelab accepted as agreement."""


def reference_spec(positions: int, steps: int = 1440, *, keepers: int = 1, gas_usd: float = 0.0,
                   depth_usd_per_position: float = DEPTH_USD_PER_POSITION, seed: int = 7,
                   crash: list[list[float]] | None = None) -> dict[str, Any]:
    """The cascadelab spec that the reference model replicates.

    One protocol with a fixed 5% bonus and 50% close factor (Aave v3 WETH), an instant
    oracle, one constant-product ETH pool whose depth scales with the book, passive
    borrowers drawn like the default scenario's, the default scenario's crash without
    noise, and keepers with ample capital and block space.  ``gas_usd`` is a constant gas
    cost per liquidation (gas paid in a token that is not a modelled asset); ``crash``
    replaces the scripted (step, price) path.
    """
    return {
        "run": {"steps": steps, "dt_seconds": 60, "seed": seed},
        "assets": {"ETH": {"process": "path", "sigma": 0.0, "path": crash or DEFAULT_CRASH}},
        "venues": {"ETH": {"kind": "constant_product", "depth_usd": depth_usd_per_position * positions,
                           "fee": 0.003, "recovery_halflife_steps": 10}},
        "gas": {"base_gwei": 20.0, "sensitivity": 0.0, "token": "GAS", "token_price_usd": 1.0},
        "protocols": {"lender": {
            "mechanism": textbook_fixed_bonus(0.05, 0.5),
            "oracle": {"kind": "instant", "lag_steps": 0},
            "markets": {"ETH": {"liquidation_threshold": 0.825}},
        }},
        "populations": {"borrowers": {
            "protocol": "lender", "count": positions, "collateral_asset": "ETH",
            "collateral_usd": {"dist": "lognormal", "median": 20_000.0, "sigma": 1.2, "high": 5_000_000.0},
            "health": {"dist": "uniform", "low": 1.05, "high": 2.5},
        }},
        "liquidators": {"count": keepers, "capital_usd": 1e15, "gas_units": gas_usd / 20e-9,
                        "min_profit_usd": 0.0, "max_fills_per_step": 1_000_000_000},
    }


def textbook_fixed_bonus(bonus: float, close_factor: float) -> dict[str, Any]:
    """A ``fixed_bonus`` config with one close factor at any health, no dust rules and no protocol fee.

    Engines whose fixed_bonus has presets (Aave v3.3 by default: 100% close factor below
    health 0.95, dust and leftover rules, a protocol fee) get ``preset = "textbook"``, which
    switches those off; older engines have only bonus and close factor.
    """
    from mechanisms.fixed_bonus import FixedBonusConfig

    config: dict[str, Any] = {"kind": "fixed_bonus", "bonus": bonus, "close_factor": close_factor}
    if "preset" in {f.name for f in fields(FixedBonusConfig)}:
        config["preset"] = "textbook"
    return config


@dataclass(frozen=True)
class ReferenceParams:
    """The scalars the reference model needs, read from a cascadelab spec of the supported shape."""

    steps: int
    knots: list[tuple[float, float]]
    depth_usd: float
    fee: float
    halflife: float
    lt: float
    bonus: float
    close_factor: float
    keepers: int
    capital_usd: float
    gas_usd: float
    min_profit_usd: float

    @classmethod
    def from_spec(cls, spec: Any) -> ReferenceParams:
        """Check that ``spec`` (a cascadelab Spec) is one the reference replicates, and read it."""
        (asset, a_cfg), = spec.assets.items()
        (proto,) = spec.protocols.values()
        venue, mech, oracle, liq, gas = spec.venue(asset), proto.mechanism, proto.oracle, spec.liquidators, spec.gas
        needs = {
            "one asset with a noiseless scripted path": a_cfg.process == "path" and a_cfg.sigma == 0.0,
            "a constant_product venue": venue.kind == "constant_product",
            "fixed_bonus with one close factor, no dust rules, no protocol fee": (
                type(mech).__name__ == "FixedBonusConfig"
                and all(getattr(mech, k, 0.0) == 0.0
                        for k in ("full_close_health", "dust_usd", "min_leftover_usd", "protocol_fee"))),
            "an instant oracle without lag": oracle.kind == "instant" and oracle.lag_steps == 0,
            "USD debt": proto.debt_asset == "USD",
            "passive borrowers, no explicit positions": not spec.positions and all(
                p.behaviour.kind == "passive" for p in spec.populations.values()),
            "a constant gas cost": liq.gas_units == 0.0 or (gas.token not in spec.assets and not gas.path),
            "keepers without latency, gas cap, block limit or strategy": (
                liq.latency_steps == 0 and math.isinf(liq.max_gas_gwei) and liq.strategy == "default"
                and liq.max_fills_per_step >= 1_000_000 and liq.rounds_per_step == 1),
            "unlimited arbitrage, no noise traders": math.isinf(spec.arbitrageurs.capital_usd_per_step) and all(
                n.volume_usd == 0 for n in spec.noise.values()),
        }
        missing = [k for k, ok in needs.items() if not ok]
        if missing:
            raise ValueError(f"the reference model cannot replicate this spec; it needs {', '.join(missing)}")
        gas_usd = liq.gas_units * min(gas.base_gwei, gas.max_gwei) * 1e-9 * gas.token_price_usd
        return cls(steps=spec.run.steps, knots=[(float(s), float(p)) for s, p in a_cfg.path],
                   depth_usd=venue.depth_usd, fee=venue.fee, halflife=venue.recovery_halflife_steps,
                   lt=proto.markets[asset].liquidation_threshold, bonus=mech.bonus, close_factor=mech.close_factor,
                   keepers=liq.count, capital_usd=liq.capital_usd, gas_usd=gas_usd,
                   min_profit_usd=liq.min_profit_usd)


def crash_price(knots: list[tuple[float, float]], step: int) -> float:
    """The scripted fundamental: linear between (step, price) knots, flat after the last."""
    if step >= knots[-1][0]:
        return knots[-1][1]
    for (s0, p0), (s1, p1) in zip(knots, knots[1:], strict=False):
        if s0 <= step <= s1:
            return p0 + (p1 - p0) * (step - s0) / (s1 - s0)
    return knots[0][1]


class Pool:
    """A constant-product ETH/USD pool (Uniswap v2, fee on the input; the fee leaves the pool)."""

    def __init__(self, depth_usd: float, price: float, fee: float) -> None:
        self.usd = depth_usd / 2.0
        self.eth = self.usd / price
        self.k = self.eth * self.usd
        self.fee = fee

    def price(self) -> float:
        return self.usd / self.eth

    def quote_sell(self, eth: float) -> float:
        """USD received for selling ``eth``, without trading."""
        eth_in = eth * (1.0 - self.fee)
        return self.usd * eth_in / (self.eth + eth_in)

    def sell(self, eth: float) -> float:
        """Sell ``eth`` into the pool; returns the USD received."""
        out = self.quote_sell(eth)
        self.eth += eth * (1.0 - self.fee)
        self.usd = self.k / self.eth
        return out

    def arbitrage_to(self, price: float) -> None:
        """Arbitrageurs trade the pool to ``price`` (the product of the reserves stays k)."""
        self.eth = math.sqrt(self.k / price)
        self.usd = math.sqrt(self.k * price)


class Borrower(mesa.Agent):
    """One position: ETH collateral and USD debt."""

    def __init__(self, model: ReferenceModel, collateral: float, debt: float, lt: float) -> None:
        super().__init__(model)
        self.collateral = collateral
        self.debt = debt
        self.lt = lt
        self.collateral_scale = max(collateral, 1.0)
        self.debt_scale = max(debt, 1.0)
        self.step_seen = -1
        self.step_health = math.inf
        self.repayable = 0.0

    def health(self, t: int, price: float) -> float:
        """Health at the oracle price as the protocol saw it at the start of step ``t``.

        The first keeper to look in a step computes it, with what the protocol lets
        liquidators repay in this step (the close factor applies once per step, however
        many keepers come); later keepers in the same step see the same numbers.
        """
        if self.step_seen != t:
            self.step_seen = t
            self.step_health = self.collateral * price * self.lt / self.debt if self.debt > 0 else math.inf
            if self.step_health < 1.0:
                p = self.model.p
                self.repayable = min(p.close_factor * self.debt, self.collateral * price / (1.0 + p.bonus))
        return self.step_health

    def repay(self, repaid: float, seized: float) -> None:
        """Apply a liquidation to this position (dust snapped to zero)."""
        self.collateral -= seized
        self.debt -= repaid
        if abs(self.collateral) <= DUST * self.collateral_scale:
            self.collateral = 0.0
        if abs(self.debt) <= DUST * self.debt_scale:
            self.debt = 0.0


class Liquidator(mesa.Agent):
    """A keeper: every step it looks at every borrower and liquidates the profitable ones."""

    def __init__(self, model: ReferenceModel, capital: float) -> None:
        super().__init__(model)
        self.capital = capital

    def profit(self, pay: float, price: float) -> float:
        m = self.model
        return m.pool.quote_sell(pay * (1.0 + m.p.bonus) / price) - pay - m.p.gas_usd

    def step(self) -> None:
        m = self.model
        p = m.p
        price = m.oracle_price
        candidates = []
        for borrower in m.agents_by_type[Borrower]:
            if borrower.health(m.t, price) >= 1.0 or borrower.debt <= 0:
                continue
            max_pay = borrower.repayable
            if max_pay <= 0:
                continue
            best_pay, best_profit = 0.0, -math.inf
            for f in SIZE_FRACTIONS:
                profit = self.profit(max_pay * f, price)
                if profit > best_profit:
                    best_pay, best_profit = max_pay * f, profit
            if best_profit >= p.min_profit_usd:
                candidates.append((best_profit / max(best_pay, 1e-12), borrower, best_pay))
        candidates.sort(key=lambda c: -c[0])  # best profit per dollar first (stable: ties in borrower order)
        spent, capital = 0.0, self.capital
        for _, borrower, pay in candidates:
            received = pay * (1.0 + p.bonus) / price
            marginal = m.pool.quote_sell(received) - pay - p.gas_usd
            spent += pay
            if marginal < p.min_profit_usd or spent > capital:
                break
            seized = min(received, borrower.collateral)
            borrower.repayable -= pay
            borrower.repay(min(pay, borrower.debt), seized)
            m.liquidation_count += 1
            m.liquidated_usd += seized * price
            self.capital += m.pool.sell(seized) - pay - p.gas_usd
            if borrower.collateral == 0.0 and borrower.debt > 0.0:
                m.written_off_usd += borrower.debt
                borrower.debt = 0.0


class ReferenceModel(mesa.Model):
    """The whole scenario: borrowers, keepers, one pool, the scripted crash."""

    def __init__(self, params: ReferenceParams, collateral: list[float], debt: list[float], seed: int = 0) -> None:
        super().__init__(rng=seed)
        self.p = params
        self.t = 0
        self.fundamental = crash_price(params.knots, 0)
        self.pool = Pool(params.depth_usd, self.fundamental, params.fee)
        self.decay = 0.5 ** (1.0 / params.halflife)
        self.oracle_price = self.pool.price()
        self.liquidation_count = 0
        self.liquidated_usd = 0.0
        self.written_off_usd = 0.0
        for c, d in zip(collateral, debt, strict=True):
            Borrower(self, c, d, params.lt)
        for _ in range(params.keepers):
            Liquidator(self, params.capital_usd)
        self.datacollector = mesa.DataCollector(model_reporters={
            "fundamental": "fundamental", "market": lambda m: m.pool.price(), "liquidations": "liquidation_count"})
        self.datacollector.collect(self)

    def step(self) -> None:
        self.t += 1
        previous = self.fundamental
        self.fundamental = crash_price(self.p.knots, self.t)
        displacement = math.log(self.pool.price() / previous)
        self.pool.arbitrage_to(self.fundamental * math.exp(displacement * self.decay))
        self.oracle_price = self.pool.price()
        self.agents_by_type[Liquidator].shuffle_do("step")  # borrowers are passive: nothing to schedule
        self.datacollector.collect(self)

    def run(self) -> ReferenceModel:
        while self.t < self.p.steps:
            self.step()
        return self

    def metrics(self) -> dict[str, float]:
        """The cascadelab metrics this model can compute, with the same definitions."""
        price = self.pool.price()
        shortfall = sum(max(b.debt - b.collateral * price, 0.0) for b in self.agents_by_type[Borrower])
        frame = self.datacollector.get_model_vars_dataframe()
        return {
            "liquidation_count": float(self.liquidation_count),
            "bad_debt_usd": self.written_off_usd + shortfall,
            "liquidated_usd": self.liquidated_usd,
            "max_price_impact": float(max((1.0 - frame["market"] / frame["fundamental"]).max(), 0.0)),
        }


def book_arrays(spec: Any, seed: int | None = None) -> tuple[list[float], list[float]]:
    """The positions cascadelab draws for ``spec`` (same seed tree, same stream), as Python floats."""
    from cascadelab.book import build_book
    from cascadelab.rng import run_seed, streams

    book, _ = build_book(spec, streams(run_seed(spec.run.seed if seed is None else seed)).book)
    return book.collateral[:, 0].tolist(), book.debt.tolist()


def run_reference(spec: Any, positions: tuple[list[float], list[float]] | None = None) -> dict[str, float]:
    """Run the reference model on a cascadelab spec (dict or Spec); returns its metrics."""
    from cascadelab.spec import load_spec

    resolved = load_spec(spec)
    collateral, debt = positions if positions is not None else book_arrays(resolved)
    model = ReferenceModel(ReferenceParams.from_spec(resolved), collateral, debt, seed=resolved.run.seed)
    return model.run().metrics()


def relative_difference(a: float, b: float) -> float:
    """|a - b| / max(|a|, |b|), 0 when both are 0."""
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale > 0 else 0.0


if __name__ == "__main__":
    import time

    import cascadelab

    for n in (1_000, 10_000):
        raw = reference_spec(n, 1440)
        t0 = time.perf_counter()
        ref = run_reference(raw)
        t1 = time.perf_counter()
        fast = cascadelab.run(raw).metrics
        t2 = time.perf_counter()
        print(n, f"reference {t1 - t0:.2f}s cascadelab {t2 - t1:.2f}s",
              {k: (ref[k], fast[k], relative_difference(ref[k], fast[k])) for k in ref}, np.round(t1 - t0, 2))
