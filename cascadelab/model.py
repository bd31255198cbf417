"""CascadeModel: the Mesa model that owns the book, the market, the protocols and the agents.

The step order (DESIGN.md section 4) is written out once, in :meth:`CascadeModel.step`.
Positions live in the :class:`~cascadelab.book.PositionBook` as arrays; Mesa agents
(borrower cohorts, keepers, arbitrageurs, noise traders) carry behaviour and act on
index arrays, so a step loops over tens of agents, never over positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mesa
import numpy as np
import numpy.typing as npt
from mesa.agent import AgentSet
from scipy.optimize import brentq

from agents.arbitrageurs import Arbitrageur
from agents.auction_bidders import english_bids
from agents.backstop import Backstop
from agents.borrowers import BorrowerCohort
from agents.liquidators import Liquidator
from agents.noise_traders import NoiseTrader
from cascadelab.arrays import unique_inverse
from cascadelab.book import PositionBook, build_book
from cascadelab.health_band import HealthBand
from cascadelab.market import GasMarket, Oracle, Venue, fundamental_paths
from cascadelab.record import Recorder
from cascadelab.rng import Streams, streams
from cascadelab.spec import Spec
from cascadelab.take_bound import TakeBound
from mechanisms.auctions import NOBODY, AuctionOffers
from mechanisms.base import BORROWER, POOL, Bids, Fills, MechanismBase, Offers
from mechanisms.registry import make as make_mechanism

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

ROUNDING_SLACK = 1e-12
"""USD slack per USD of venue depth for the rounding of differences of quotes (~1e-16 of it): 10^4 times that."""

NOBODY_LIQUIDATABLE = np.zeros(0, dtype=np.int64)
NOBODY_LIQUIDATABLE.flags.writeable = False


@dataclass(frozen=True)
class Sources:
    """Ids of the flows whose price impact is attributed: liquidation sales and deleveraging per protocol,
    noise, and sales by backstop pools per protocol."""

    protocols: tuple[str, ...]

    def liquidation(self, p: int) -> int:
        return p

    def deleverage(self, p: int) -> int:
        return len(self.protocols) + p

    @property
    def noise(self) -> int:
        return 2 * len(self.protocols)

    def pool(self, p: int) -> int:
        return 2 * len(self.protocols) + 1 + p

    @property
    def names(self) -> list[str]:
        return ([f"liq:{p}" for p in self.protocols] + [f"delev:{p}" for p in self.protocols] + ["noise"]
                + [f"pool:{p}" for p in self.protocols])

    def __len__(self) -> int:
        return 3 * len(self.protocols) + 1


def release_agent_id_counter(model: mesa.Model) -> None:
    """Drop Mesa's agent-id counter of a model whose agents all exist.

    Mesa 3.3 numbers agents from a class-level ``Agent._ids`` dict keyed by the model and never
    removes the key, so every model ever built stays reachable: a sweep worker kept all of its
    runs (about 3 MB each; 12 GB per worker after 3,500 runs of the sensitivity study).  Called
    once all agents are created (only ``__init__`` creates them), so ids stay unique.
    """
    getattr(mesa.Agent, "_ids", {}).pop(model, None)


class CascadeModel(mesa.Model):
    """One scenario run: ``CascadeModel(spec, seed).run()`` then ``.result()``.

    Args:
        spec: the validated scenario.
        seed: the run's SeedSequence (see :func:`cascadelab.rng.run_seed`).
        feedback: if False, sales do not move prices (the counterfactual without cascade).
    """

    def __init__(self, spec: Spec, seed: np.random.SeedSequence, feedback: bool = True) -> None:
        self.streams: Streams = streams(seed)
        super().__init__(rng=self.streams.agents)
        self.spec = spec
        self.seed_sequence = seed
        self.feedback = feedback
        self.t = 0
        self.n_steps = spec.run.steps
        self.asset_names = spec.asset_names
        self.n_assets = len(self.asset_names)
        self.protocol_names = spec.protocol_names
        self.n_protocols = len(self.protocol_names)
        self.sources = Sources(tuple(self.protocol_names))

        # market
        self.fundamental = fundamental_paths(spec, self.streams.prices)
        self.venues = [
            Venue(self._venue_config(a), spec.assets[a].initial_price, len(self.sources)) for a in self.asset_names
        ]
        self._total_depth_usd = sum(v.config.depth_usd for v in self.venues)  # rounding scale of trade quotes
        self.observed = np.zeros_like(self.fundamental)  # market price as seen at step 3 of each step
        self.observed[0] = self.fundamental[0]
        self.oracles = [Oracle(spec.protocols[p].oracle, self.observed) for p in self.protocol_names]
        # the same oracles fed the fundamental price: what protocols would see without any price impact
        self.shadow_oracles = [Oracle(spec.protocols[p].oracle, self.fundamental) for p in self.protocol_names]
        token = spec.gas.token if spec.gas.token in spec.assets else None
        self.gas = GasMarket(spec.gas, self.n_steps, None if token is None else self.asset_names.index(token))
        self.oracle_px = self._oracle_matrix()

        # book and protocols
        self.book: PositionBook
        self.book, cohorts = build_book(spec, self.streams.book)
        self.mechanisms = [
            make_mechanism(spec.protocols[p].mechanism, i, self.n_assets, spec.run.dt_seconds)
            for i, p in enumerate(self.protocol_names)
        ]
        # the mechanisms where keepers can lock capital in standing bids (English auctions): the rest report 0
        self.lockers = [(p, mech) for p, mech in enumerate(self.mechanisms)
                        if type(mech).committed is not MechanismBase.committed]
        self.recorder = Recorder(self)
        self.health_bands = [HealthBand(self.book, [p], 1.0) for p in range(self.n_protocols)]
        self._unhealthy: list[IntArray] = [NOBODY_LIQUIDATABLE] * self.n_protocols  # found at the last evaluation
        self._unhealthy_counts: list[int] | None = None  # their sizes, None if all are empty

        # agents
        self.borrowers = [
            BorrowerCohort(self, pop, idx, spec.populations[pop].behaviour)
            for pop, idx in zip(cohorts.population, cohorts.positions, strict=True)
        ]
        self.keepers = [
            Liquidator(self, i, cfg)
            for i, cfg in enumerate(cfg for _, cfg in spec.liquidators.all_groups() for _ in range(cfg.count))
        ]
        self._keeper_latency = [k.config.latency_steps for k in self.keepers]
        self._same_latency = len(set(self._keeper_latency)) <= 1  # then the order is by the draws alone
        self._keeper_configs = list({id(k.config): k.config for k in self.keepers}.values())
        self._take_bounds = [TakeBound(self, p) for p in range(self.n_protocols)]
        self.arbitrageurs = [
            Arbitrageur(self, a, spec.arbitrageurs.capital_usd_per_step) for a in range(self.n_assets)
        ]
        self.noise_traders = [
            NoiseTrader(self, self.asset_names.index(a), cfg.volume_usd)
            for a, cfg in spec.noise.items() if cfg.volume_usd > 0
        ]
        self.borrower_set = AgentSet(self.borrowers, random=self.random)
        # step 4 as Mesa's shuffle_do over borrower_set (the same random.shuffle of a list in the set's
        # order, so the same draws and order) with only the cohorts that can react: None in the others'
        # slots.  None here: through shuffle_do itself (the reference tests/test_fast_paths.py compares with)
        self._cohort_slots: list[BorrowerCohort | None] | None = [
            None if c.behaviour.kind == "passive" or c.positions.size == 0 else c for c in self.borrowers]
        self.backstops = [Backstop(self, p, mech) for p, mech in enumerate(self.mechanisms) if hasattr(mech, "pool_for")]

        # flows for the conservation check and planning
        self.planned = np.zeros(self.n_assets)
        self.planned_debt = np.zeros(self.n_assets)  # debt-asset units keepers have bid to buy, not yet bought
        self.nothing_planned = True
        """No sale or debt purchase was planned this step (so both arrays above are zero): a flag, as reading
        it costs a tenth of two ``any`` reductions and the take bound asks in every round it re-checks."""
        self.borrower_sold = np.zeros(self.n_assets)
        self.keeper_sold = np.zeros(self.n_assets)
        self.protocol_collateral = np.zeros(self.n_assets)
        self.pool_received = np.zeros(self.n_assets)
        self.backstop_sold = np.zeros(self.n_assets)
        self.topped_up = np.zeros(self.n_assets)
        self.noise_net_units = np.zeros(self.n_assets)
        self.recorder.collect(0)
        release_agent_id_counter(self)

    def _venue_config(self, asset: str):
        cfg = self.spec.venue(asset)
        if not self.feedback:
            from dataclasses import replace

            cfg = replace(cfg, kind="none")
        return cfg

    # ------------------------------------------------------------------ prices

    def market_px(self) -> FloatArray:
        """Current market price of every asset."""
        return self.market_px_ext()[: self.n_assets]

    def market_px_ext(self) -> FloatArray:
        """Market prices with the USD numeraire (1.0) appended."""
        f = self.fundamental[self.t]
        px = np.empty(self.n_assets + 1)
        for a, v in enumerate(self.venues):
            px[a] = v.price(f[a])
        px[-1] = 1.0
        return px

    def shadow_oracle_px(self) -> FloatArray:
        """(P, A+1) prices each protocol's oracle would report if trades never moved the market."""
        return self._oracle_matrix(self.shadow_oracles)

    def _oracle_matrix(self, oracles: list[Oracle] | None = None) -> FloatArray:
        px = np.empty((self.n_protocols, self.n_assets + 1))
        px[:, -1] = 1.0
        for p, o in enumerate(self.oracles if oracles is None else oracles):
            px[p, :-1] = o.price
        return px

    # ------------------------------------------------------------------ the step

    def step(self) -> None:
        """One step, in the fixed order of DESIGN.md section 4."""
        self.t = t = self.t + 1
        # 1. fundamental prices advance (precomputed paths: nothing to do but move t)
        # 2. venues recover toward the fundamental (arbitrageurs)
        for arb in self.arbitrageurs:
            arb.act()
        for trader in self.noise_traders:
            trader.trade()
        # 3. oracles and gas update
        self.observed[t] = self.market_px()
        for o in self.oracles:
            o.update(t)
        self.oracle_px = self._oracle_matrix()
        for o in self.shadow_oracles:
            o.update(t)
        self.gas.update(t, self.observed)
        # 4. borrowers react
        if self._cohort_slots is None:
            self.borrower_set.shuffle_do("react")
        else:
            slots = self._cohort_slots.copy()  # shuffled from the set's order every step, as shuffle_do does
            self.random.shuffle(slots)
            for cohort in slots:
                if cohort is not None:
                    cohort.react()
        # 5. health of every position; each mechanism learns which are liquidatable
        for mech, unhealthy in zip(self.mechanisms, self._liquidatable(t), strict=True):
            mech.start(unhealthy, t)
        # 6-7. offers, keepers bid (ordered by latency, ties broken by the seeded rng), settle, apply
        order = self._keeper_order()
        # sales planned this step (all rounds: they are sold in step 8) and per-step transaction limits
        self.planned[:] = 0.0
        self.nothing_planned = True
        for k in order:
            if k.fills_this_step:  # (the others have nothing to reset)
                k.new_step()
        if not all(mech.idle() for mech in self.mechanisms):
            for _ in range(self.spec.liquidators.rounds_per_step):
                if not self._liquidation_round(order, t):
                    break
        for p, mech in enumerate(self.mechanisms):
            self._apply_fills(p, mech.end_step(self.book, t))
        # 8. keepers sell seized collateral; backstops lose depositors and sell or hold what they hold
        for k in order:
            if k.books.receipts:  # (the others have nothing to sell)
                k.sell()
        for b in self.backstops:
            b.act()
        # 9. record
        self.recorder.collect(t)

    def _liquidatable(self, t: int) -> list[IntArray]:
        """Positions of each protocol with health < 1 at its oracle (read-only arrays); records how many.

        A protocol's health is evaluated only when its :class:`HealthBand` (kept from the last
        evaluation) cannot prove that its positions below 1 are still the same: same answer,
        without the O(positions) pass in steps where prices drift and nobody crosses 1, or where
        only other protocols' positions changed.
        """
        px = self.oracle_px
        stale = [p for p, band in enumerate(self.health_bands) if not band.unchanged(px)]
        if stale:
            hf = self.book.health(px, stale)
            for p in stale:
                s = self.book.slices[p]
                unhealthy = self.health_bands[p].reset(hf[s], px) + s.start
                unhealthy.flags.writeable = False
                self._unhealthy[p] = unhealthy
            counts = [u.size for u in self._unhealthy]
            self._unhealthy_counts = counts if any(counts) else None
        if self._unhealthy_counts is not None:
            self.recorder.unhealthy_step(t, self._unhealthy_counts)
        return self._unhealthy

    def _keeper_order(self) -> list[Liquidator]:
        draw = self.random.random
        if len(self.keepers) == 1:  # the same draw, nothing to sort
            draw()
            return list(self.keepers)
        draws = [draw() for _ in self.keepers]
        # with one latency the (latency, draw) pairs sort as the draws alone do, which is cheaper
        keys = draws if self._same_latency else list(zip(self._keeper_latency, draws, strict=True))
        return [self.keepers[i] for i in sorted(range(len(self.keepers)), key=keys.__getitem__)]

    def _liquidation_round(self, keepers: list[Liquidator], t: int) -> bool:
        """One offer/bid/settle round across protocols; True if anything was filled."""
        caller = next((k.index for k in keepers if k.can_transact()), NOBODY)  # who can call bark/redo/bite
        any_fill = False
        for p, mech in enumerate(self.mechanisms):
            mech.caller = caller
            if mech.idle():
                continue
            bound = self._take_bounds[p]
            if bound.due(t, mech.liquidatable.size) and self._nobody_takes(p, mech):
                bids = Bids.empty()  # no keeper would take anything: the offers are not even built
            else:
                offers = mech.offers(self.book, self.oracle_px[p], t)
                if isinstance(offers, AuctionOffers):  # standing bids (English auctions), not linear takes
                    bids = english_bids(keepers, p, offers, t)
                else:
                    bids, found = self._linear_bids(p, keepers, offers, t)
                    bound.worth_trying = not found  # nothing even worth taking (not merely unaffordable)
            fills = mech.settle(self.book, bids, t)
            any_fill |= self._apply_fills(p, fills)
            self.planned_debt[:] = 0.0  # this protocol's purchases are done (or were not filled)
        return any_fill

    def _linear_bids(self, p: int, keepers: list[Liquidator], offers: Offers, t: int) -> tuple[Bids, bool]:
        """Keepers' bids on linear offers, in order; and whether any keeper found an offer worth taking."""
        if offers.size == 0:
            return Bids.empty(), False
        remaining = offers.max_pay.copy()
        shared: dict[int, IntArray] = {}  # offers found profitable, per keeper configuration
        # (configuration, free slots) whose window held nothing profitable since the last bid: an
        # identical keeper would evaluate the same window at the same planned sales and find nothing
        exhausted: set[tuple[int, int]] = set()
        # configuration -> free capital an identical keeper needs to take anything since the last bid
        # (capital-starved keepers: the best-ranked clip costs more than they hold, step after step)
        blocked: dict[int, float] = {}
        parts = []
        found = False
        for k in keepers:
            known = shared.get(id(k.config))
            if known is not None and known.size == 0:
                continue  # an identical keeper found nothing profitable (or left nothing); neither will this one
            if (id(k.config), k.slots()) in exhausted:
                continue
            needs = blocked.get(id(k.config))
            if needs is not None and not needs <= k.free_capital():
                continue  # it would stop at the same first offer, for want of capital
            b, profitable = k.bid(p, offers, remaining, t, known)
            if profitable is not None:  # None: a first keeper without capital looked at nothing
                shared[id(k.config)] = profitable  # the first keeper's ranking, or empty once nothing is left in it
                if known is None:
                    found = found or profitable.size > 0
            parts.append(b)
            self._plan_debt_purchase(p, b.pay)
            if b.size:
                exhausted.clear()  # remaining and planned sales moved
                blocked.clear()
            else:
                if k.window_was_empty:
                    exhausted.add((id(k.config), k.slots()))
                if k.needs_capital is not None:
                    blocked[id(k.config)] = k.needs_capital
        return Bids.concat(parts), found

    def _nobody_takes(self, p: int, mech) -> bool:
        """Proof (``cascadelab.take_bound``) that no keeper takes any of protocol p's offers this round."""
        ceiling = mech.offer_ceiling(self.book, self.oracle_px[p])
        return ceiling is not None and self._take_bounds[p].nobody_takes(ceiling, self._least_take_profit())

    def _least_take_profit(self) -> float:
        """The lowest profit before gas any keeper would take a clip for: min over configurations of
        min_profit_usd + gas now (every strategy asks at least min_profit_usd)."""
        return min((cfg.min_profit_usd + self.gas.cost_usd(cfg.gas_units) for cfg in self._keeper_configs),
                   default=math.inf)  # no keepers: nobody takes anything

    def _apply_fills(self, p: int, fills: Fills) -> bool:
        """Log fills (with the health they were taken at), apply them to the book, hand collateral to keepers."""
        if fills.size == 0:
            return False
        ids = self.recorder.log_fills(p, fills)
        self.book.apply(fills)
        self.protocol_collateral += fills.to_protocol.sum(axis=0)
        # (adding a sum over no rows would add +0.0: these totals start at +0.0, so skipping it is exact)
        if (pool := fills.taker == POOL).any():
            self.pool_received += fills.received[pool].sum(axis=0)
        if (borrower := fills.taker == BORROWER).any():
            self.topped_up += np.maximum(-fills.seized[borrower], 0.0).sum(axis=0)
        keeper_rows = np.flatnonzero(fills.taker >= 0)
        if keeper_rows.size:
            debt_cost = self._debt_cost_usd(p, fills.paid[keeper_rows])
            takers = fills.taker[keeper_rows]
            incentive_usd = fills.incentive[keeper_rows]
            if incentive_usd.any():
                incentive_usd = incentive_usd * self.market_px_ext()[self.book.debt_asset[p]]
            for k in unique_inverse(takers)[0]:
                rows = keeper_rows[takers == k]
                sel = takers == k
                keeper = self.keepers[k]
                gas_usd = self.gas.cost_usd(keeper.config.gas_units) * rows.size
                keeper.receive(p, ids[rows], fills.received[rows], float(debt_cost[sel].sum()), gas_usd,
                               float(incentive_usd[sel].sum()))
        return True

    # ------------------------------------------------------------------ market access for agents

    def plan_sales(self, units: FloatArray) -> None:
        """A keeper announces collateral it will sell this step (later keepers price it in)."""
        self.planned += units
        self.nothing_planned = False

    def quote_sales(self, units: FloatArray) -> FloatArray:
        """USD proceeds of selling ``units`` (shape (..., A)) after the sales already planned this step."""
        f = self.fundamental[self.t]
        total = np.zeros(units.shape[:-1])
        for a in self._assets_in(units):
            v = self.venues[a]
            z = v.z
            if self.planned[a] > 0:
                base = v.quote_sell(np.array([self.planned[a]]), f[a], z)[0]
                total += v.quote_sell(units[..., a] + self.planned[a], f[a], z) - base
            else:
                total += v.quote_sell(units[..., a], f[a], z)
        return total

    def _assets_in(self, amounts: FloatArray) -> tuple[int, ...] | IntArray:
        """The assets with a nonzero (or NaN) amount somewhere in ``amounts`` (..., A).  With one asset a
        whole-array ``any``, about half the cost of reducing the (n, 1) view along its first axis."""
        if self.n_assets == 1:
            return (0,) if amounts.any() else ()
        return np.flatnonzero(amounts.reshape(-1, self.n_assets).any(axis=0))

    def sales_slope(self, units: FloatArray, direction: FloatArray) -> FloatArray:
        """Slope of :meth:`quote_sales` at ``units`` (..., A) along ``direction`` (same shape): USD per unit
        of scale, sum_a direction_a x the venue's marginal price after the planned sales and ``units_a``."""
        f = self.fundamental[self.t]
        slope = np.zeros(units.shape[:-1])
        for a in self._assets_in(direction):
            v = self.venues[a]
            slope += direction[..., a] * v.marginal_sell(units[..., a] + self.planned[a], f[a])
        return slope

    def trade_bounds(self, p: int) -> tuple[FloatArray, float, float]:
        """Bounds on what trading now can give a keeper of protocol p, whatever the size.

        Returns (per asset: the most USD one unit sold can fetch = the venue's current price net
        of its fee, since every venue's proceeds are concave in size and planned sales only
        lower them; the least USD one unit of p's debt asset can cost = its market price, since
        purchases are convex; an absolute USD slack above the rounding of :meth:`quote_sales` and
        :meth:`quote_debt_cost`, whose differences of large quotes can lose ~1e-16 of the venue's scale:
        ``ROUNDING_SLACK`` of it).
        """
        px = self.market_px_ext()
        net = np.array([px[a] * (1.0 - v.fee) for a, v in enumerate(self.venues)])
        da = self.book.debt_asset[p]
        scale = self._total_depth_usd + float(self.planned @ px[:-1])
        if da < self.n_assets:
            scale += self.planned_debt[da] * px[da]
        return net, float(px[da]), ROUNDING_SLACK * scale

    def quote_debt_cost(self, p: int, pay: FloatArray) -> FloatArray:
        """USD cost of acquiring ``pay`` units of protocol p's debt asset after the purchases already planned."""
        da = self.book.debt_asset[p]
        if da == self.n_assets:
            return np.asarray(pay, dtype=np.float64)
        venue, f = self.venues[da], float(self.fundamental[self.t, da])
        before = self.planned_debt[da]
        if before > 0:
            return venue.quote_buy(np.asarray(pay) + before, f) - venue.quote_buy(np.array([before]), f)[0]
        return venue.quote_buy(pay, f)

    def _plan_debt_purchase(self, p: int, pay: FloatArray) -> None:
        """A keeper's bids commit it to buying the debt asset; later keepers price that in (as for sales)."""
        da = self.book.debt_asset[p]
        if da < self.n_assets and pay.size:
            self.planned_debt[da] += float(pay.sum())
            self.nothing_planned = False

    def _debt_cost_usd(self, p: int, paid: FloatArray) -> FloatArray:
        """Keepers buy the debt asset they pay with (moving its venue); returns USD per row."""
        da = self.book.debt_asset[p]
        if da == self.n_assets:
            return np.asarray(paid, dtype=np.float64)
        total = float(paid.sum())
        cost = self.venues[da].buy(total, float(self.fundamental[self.t, da]), self.sources.liquidation(p))
        return paid * (cost / total) if total > 0 else np.zeros_like(paid)

    def sell_collateral(self, asset: int, qty: float, protocol: int, fill_ids: IntArray,
                        fill_qty: FloatArray) -> float:
        """A keeper sells seized collateral; the price move is attributed to the fills it came from."""
        venue = self.venues[asset]
        z0 = venue.z
        proceeds = venue.sell(qty, float(self.fundamental[self.t, asset]), self.sources.liquidation(protocol))
        self.keeper_sold[asset] += qty
        self.recorder.log_sale(asset, fill_ids, fill_qty / qty, venue.z - z0, proceeds * fill_qty / qty)
        return proceeds

    def sell_for_backstop(self, protocol: int, asset: int, qty: float) -> float:
        """A backstop pool sells collateral it holds on the venue (impact source ``pool:<protocol>``); returns USD."""
        proceeds = self.venues[asset].sell(qty, float(self.fundamental[self.t, asset]), self.sources.pool(protocol))
        self.backstop_sold[asset] += qty
        return proceeds

    def deleverage(self, positions: IntArray, asset: IntArray, units: FloatArray) -> Fills:
        """Borrowers sell collateral on the venues and repay with the proceeds (one trade per protocol and asset)."""
        book = self.book
        A = self.n_assets
        repaid = np.zeros(positions.size)
        f = self.fundamental[self.t]
        for p in np.unique(book.protocol[positions]):
            for a in np.unique(asset):
                rows = np.flatnonzero((book.protocol[positions] == p) & (asset == a) & (units > 0))
                qty = float(units[rows].sum())
                if qty <= 0:
                    continue
                proceeds = self.venues[a].sell(qty, float(f[a]), self.sources.deleverage(int(p)))
                self.borrower_sold[a] += qty
                bought = self._buy_debt_with(int(p), proceeds)
                repaid[rows] = bought * units[rows] / qty
        seized = np.zeros((positions.size, A))
        seized[np.arange(positions.size), asset] = units
        return Fills.make(positions, BORROWER, A, repaid=np.minimum(repaid, book.debt[positions]), seized=seized)

    def _buy_debt_with(self, p: int, usd: float) -> float:
        """Spend ``usd`` on protocol p's debt asset on its venue (moving it, source deleverage); returns units.

        A priced debt asset (a DAI-like stablecoin, CRV) must be bought back to repay, so
        deleveraging borrowers push its price up like keepers do (Klages-Mundt & Minca's
        deleveraging spiral).  USD debt is repaid one for one.
        """
        da = int(self.book.debt_asset[p])
        if da == self.n_assets or usd <= 0:
            return max(usd, 0.0)
        venue, f = self.venues[da], float(self.fundamental[self.t, da])

        def cost(q: float) -> float:  # minus the budget; clipped so a pool that cannot deliver stays finite
            return min(float(venue.quote_buy(np.array([q]), f)[0]) - usd, usd)

        hi = usd / venue.price(f)
        while cost(hi) < 0:
            hi *= 2.0
        units = brentq(cost, 0.0, hi, xtol=1e-12 * hi, rtol=1e-12) if hi > 0 else 0.0
        venue.buy(units, f, self.sources.deleverage(p))
        return units

    def apply_borrower_fills(self, fills: Fills) -> None:
        """Borrower actions go through the same mutator and log as liquidations."""
        protocol = self.book.protocol[fills.position]
        if protocol.size and (protocol == protocol[0]).all():  # one protocol (a cohort's usual case): as they are
            self._apply_fills(int(protocol[0]), fills)
            return
        for p in np.unique(protocol):
            rows = protocol == p
            self._apply_fills(int(p), Fills(*(getattr(fills, f)[rows] for f in Fills.__dataclass_fields__)))

    # ------------------------------------------------------------------ running

    def run(self) -> CascadeModel:
        """Run every step of the horizon."""
        while self.t < self.n_steps:
            self.step()
        return self

    def collateral_conservation_error(self) -> float:
        """Largest relative mismatch, over assets, of collateral conservation across all holders.

        initial + topped up == in positions + keeper inventory + sold by keepers
        + sold by borrowers + kept by protocols + received by pools; and, for every backstop,
        received == held + sold on venues or to keepers + taken away by leaving depositors.
        """
        book = self.book
        initial = book.collateral0.sum(axis=0) + self.topped_up
        held = (book.collateral.sum(axis=0) + sum(k.inventory for k in self.keepers) + self.keeper_sold
                + self.borrower_sold + self.protocol_collateral + self.pool_received)
        error = float(np.max(np.abs(initial - held) / np.maximum(initial, 1.0), initial=0.0))
        return max([error] + [b.mechanism.ledger_error() for b in self.backstops])

    def result(self):
        """The run's RunResult (metrics, timeseries, fills, cascade)."""
        return self.recorder.result()
