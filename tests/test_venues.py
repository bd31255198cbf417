"""Venue maths against closed forms (shared/reference/mechanisms.md section 8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascadelab.market.venues import Venue
from cascadelab.spec import VenueConfig


def cpmm(depth: float = 10_000_000.0, fee: float = 0.0, halflife: float = 10.0) -> Venue:
    return Venue(VenueConfig(kind="constant_product", depth_usd=depth, fee=fee, recovery_halflife_steps=halflife),
                 2000.0, n_sources=2)


def test_cpmm_price_after_a_sale_matches_the_formula() -> None:
    """depth $10M at P=2000: L = 1e7/(2 sqrt 2000) = 111803.4; x = L/sqrt(P) = 2500 ETH, y = $5M.

    Selling q = 100 ETH (no fee): P' = 2000 (2500/2600)^2 = 1849.11; proceeds = y - L^2/(x+q)
    = 5e6 - 5e6*2500/2600 = 192,307.69.
    """
    v = cpmm()
    proceeds = v.sell(100.0, 2000.0, source=0)
    assert proceeds == pytest.approx(5e6 * 100 / 2600, rel=1e-12)
    assert v.price(2000.0) == pytest.approx(2000.0 * (2500 / 2600) ** 2, rel=1e-12)
    assert v.parts[0] == pytest.approx(v.z) and v.parts[1] == 0.0


def test_cpmm_fee_is_taken_on_the_input() -> None:
    """Uniswap v2 getAmountOut: out = q*997*y / (x*1000 + q*997) with fee 0.3%."""
    v = cpmm(fee=0.003)
    x, y, q = 2500.0, 5e6, 100.0
    assert v.quote_sell(np.array([q]), 2000.0)[0] == pytest.approx(q * 997 * y / (x * 1000 + q * 997), rel=1e-12)


def test_size_to_move_price_by_d() -> None:
    """mechanisms.md 8.1: moving the price by d = 10% takes 5.41% of x (no fee)."""
    v = cpmm()
    v.sell(2500.0 * (1 / math.sqrt(0.9) - 1), 2000.0, source=0)
    assert v.price(2000.0) == pytest.approx(1800.0, rel=1e-12)


def test_buy_is_the_inverse_of_sell() -> None:
    v = cpmm()
    v.sell(50.0, 2000.0, 0)
    v.buy(50.0, 2000.0, 1)
    assert v.z == pytest.approx(0.0, abs=1e-12)
    assert v.parts.sum() == pytest.approx(v.z, abs=1e-15)


def test_recovery_halves_the_displacement_every_halflife() -> None:
    v = cpmm(halflife=10.0)
    v.sell(300.0, 2000.0, 0)
    z0 = v.z
    for _ in range(10):
        v.recover(2000.0)
    assert v.z == pytest.approx(z0 / 2, rel=1e-12)
    assert v.parts[0] == pytest.approx(z0 / 2, rel=1e-12)


def test_limited_arbitrage_capital_slows_recovery() -> None:
    free, capped = cpmm(), cpmm()
    for v in (free, capped):
        v.sell(500.0, 2000.0, 0)
    free.recover(2000.0)
    capped.recover(2000.0, capital_usd=1000.0)
    assert free.z > capped.z > free.z - abs(free.z)  # capped recovers, but less


def test_transient_linear_impact_is_additive_and_attributed_exactly() -> None:
    """Linear impact: selling V moves the price 10%; two sources of V/2 and V/4 give 5% and 2.5%.

    Kyle-lambda form, mechanisms.md 8.4: dP/P = -0.1 Q/V with V = $1M.
    """
    v = Venue(VenueConfig(kind="transient_impact", impact="linear", depth_usd=1e6, fee=0.0), 100.0, n_sources=2)
    v.sell(5_000.0, 100.0, source=0)  # $500k
    v.sell(2_500.0, 100.0, source=1)  # $250k
    assert v.price(100.0) == pytest.approx(100.0 * (1 - 0.075), rel=1e-12)
    assert v.parts[0] == pytest.approx(-0.05, rel=1e-12) and v.parts[1] == pytest.approx(-0.025, rel=1e-12)


def test_transient_sqrt_law() -> None:
    """Square-root law: selling V/4 moves the price by 0.1*sqrt(1/4) = 5%; average price is exact."""
    v = Venue(VenueConfig(kind="transient_impact", impact="sqrt", depth_usd=1e6, fee=0.0), 100.0, n_sources=1)
    proceeds = v.sell(2_500.0, 100.0, source=0)
    assert v.price(100.0) == pytest.approx(95.0, rel=1e-12)
    # average multiplier over u in [0, V/4]: 1 - 0.1 * (2/3) * sqrt(1/4) = 1 - 0.0333...
    assert proceeds == pytest.approx(250_000.0 * (1 - 0.1 * (2 / 3) * 0.5), rel=1e-12)


def test_venue_none_never_moves() -> None:
    v = Venue(VenueConfig(kind="none", fee=0.001), 100.0, n_sources=1)
    assert v.sell(1e9, 100.0, 0) == pytest.approx(1e11 * 0.999)
    assert v.price(100.0) == 100.0


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["constant_product", "transient_impact", "none"]),
       impact=st.sampled_from(["linear", "sqrt"]),
       trades=st.lists(st.tuples(st.floats(-0.3, 0.3), st.integers(0, 2)), min_size=1, max_size=12))
def test_parts_always_sum_to_the_displacement(kind: str, impact: str, trades: list[tuple[float, int]]) -> None:
    """Attribution is an exact decomposition under any sequence of trades and recoveries."""
    v = Venue(VenueConfig(kind=kind, impact=impact, depth_usd=1e6, fee=0.003), 100.0, n_sources=3)
    for frac, src in trades:
        v.trade_usd(frac * 1e6, 100.0, src)
        v.recover(100.0, capital_usd=5e4)
        assert np.isfinite(v.z) and v.price(100.0) > 0
        assert v.parts.sum() == pytest.approx(v.z, abs=1e-12)
