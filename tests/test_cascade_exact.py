"""Cascade attribution against hand computation (linear transient impact, where impact is additive)."""

from __future__ import annotations

import math

import pytest

import cascadelab

V = 1e7  # depth: $10M sold moves the price 10% (linear)
BONUS = 0.05
LT = 0.825
F = 1800.0
DELTA = 0.5 ** (1 / 10)  # recovery factor per step (half-life 10 steps)


def chain_spec() -> dict:
    """ETH gaps 2000 -> 1800 at step 1.  Two source positions (protocols src_a, src_c) are then
    liquidatable at the fundamental; their sales push two victim positions under, one after the other.

    - a: 10 ETH, debt 16,000 (health 0.928 at 1800), c: 5 ETH, debt 8,000 (0.928);
    - b: health 1.0001 at 1800, e: health 1.0003 at 1800 (both victim_lender);
    close factor 1 (whole debt repaid), instant oracles, no venue fee, gas or noise.  Where the
    mechanism keeps a protocol fee, keepers sell only the rest: ``kept`` below reads that share
    from the fill log (1 without a fee).
    """
    def proto() -> dict:
        return {"mechanism": {"kind": "fixed_bonus", "bonus": BONUS, "close_factor": 1.0},
                "oracle": {"kind": "instant"}, "markets": {"ETH": {"liquidation_threshold": LT}}}

    return {
        "run": {"steps": 5, "dt_seconds": 60, "seed": 1},
        "assets": {"ETH": {"process": "path", "path": [[0, 2000.0], [1, F], [10, F]]}},
        "venues": {"ETH": {"kind": "transient_impact", "impact": "linear", "depth_usd": V, "fee": 0.0,
                           "recovery_halflife_steps": 10}},
        "protocols": {"src_a": proto(), "src_c": proto(), "victim_lender": proto()},
        "positions": [
            {"protocol": "src_a", "collateral": {"ETH": 10.0}, "debt": 16_000.0, "name": "a"},
            {"protocol": "src_c", "collateral": {"ETH": 5.0}, "debt": 8_000.0, "name": "c"},
            {"protocol": "victim_lender", "collateral": {"ETH": 10.0}, "debt": 10 * F * LT / 1.0001, "name": "b"},
            {"protocol": "victim_lender", "collateral": {"ETH": 10.0}, "debt": 10 * F * LT / 1.0003, "name": "e"},
        ],
        "liquidators": {"count": 1, "capital_usd": 1e9, "gas_units": 0.0, "min_profit_usd": 0.0},
    }


@pytest.fixture(scope="module")
def chain() -> cascadelab.RunResult:
    return cascadelab.run(chain_spec())


def kept(r: cascadelab.RunResult, fill: int) -> float:
    """Share of the seized collateral that reached the keeper (the rest is a protocol fee)."""
    row = r.fills.set_index("fill_id").loc[fill]
    return 1.0 - row["to_protocol_ETH"] / row["seized_ETH"]


def test_two_source_attribution_is_exact(chain: cascadelab.RunResult) -> None:
    """a and c are sold at step 1: each sale moves z by -0.1 * q F / V with q = 1.05 D / F seized,
    so dz_a = -0.1 * 1.05 * 16000 / 1e7 = -1.68e-4 and dz_c = -0.84e-4 (F cancels).  At step 2 the
    oracle sees z = (dz_a + dz_c) * 0.5**0.1 = -2.3512e-4; b (health 1.0001 at the fundamental)
    falls to 0.99986 and is liquidated: generation 1, caused 2/3 by src_a and 1/3 by src_c
    (harm is linear in z, so the shares are the parts' shares: 16000 / 24000 and 8000 / 24000).
    """
    f = chain.fills.set_index("fill_id")
    by_pos = {int(r.position): i for i, r in f.iterrows()}
    a, c, b = by_pos[0], by_pos[1], by_pos[2]
    assert f.loc[a, "step"] == f.loc[c, "step"] == 1 and f.loc[b, "step"] == 2
    assert f.loc[a, "generation"] == f.loc[c, "generation"] == 0
    assert f.loc[a, "cause"] == "fundamental" and not f.loc[a, "induced"]
    k = kept(chain, a)
    assert kept(chain, c) == pytest.approx(k, rel=1e-12)
    dz_a, dz_c = -0.1 * (1 + BONUS) * 16_000 * k / V, -0.1 * (1 + BONUS) * 8_000 * k / V
    ts = chain.timeseries.set_index("step")
    assert ts.loc[1, "z_ETH_liq:src_a"] == pytest.approx(dz_a, rel=1e-9)
    assert ts.loc[1, "z_ETH_liq:src_c"] == pytest.approx(dz_c, rel=1e-9)
    assert f.loc[b, "generation"] == 1 and f.loc[b, "induced"]
    assert f.loc[b, "share_liq:src_a"] == pytest.approx(2 / 3, rel=1e-9)
    assert f.loc[b, "share_liq:src_c"] == pytest.approx(1 / 3, rel=1e-9)
    assert f.loc[b, "cause"] == "liq:src_a"
    seized_b = f.loc[b, "seized_usd"]
    assert chain.contagion["src_a"]["victim_lender"] >= seized_b * 2 / 3 * (1 - 1e-9)
    edges = chain.cascade[chain.cascade["child"] == b].set_index("parent")
    assert set(edges.index) == {a, c}
    assert edges.loc[a, "weight"] == pytest.approx(2 / 3, rel=1e-9)
    assert edges.loc[c, "weight"] == pytest.approx(1 / 3, rel=1e-9)


def test_second_generation_and_self_contagion(chain: cascadelab.RunResult) -> None:
    """At step 3 the gen-0 sales alone leave e at 1.0003 * (1 + (dz_a + dz_c) d^2) = 1.00008 > 1;
    with b's sale (dz_b = -0.1 * 1.05 * D_b * F / O_2 / V, O_2 = F (1 + z_2)) it falls under:
    generation 2, and b's share is dz_b d / z_3 (victim_lender's own sales: self-contagion).
    """
    f = chain.fills.set_index("fill_id")
    by_pos = {int(r.position): i for i, r in f.iterrows()}
    a, b, e = by_pos[0], by_pos[2], by_pos[3]
    dz0 = -0.1 * (1 + BONUS) * 24_000 * kept(chain, a) / V
    z2 = dz0 * DELTA
    d_b = 10 * F * LT / 1.0001
    dz_b = -0.1 * (1 + BONUS) * d_b * kept(chain, b) / (1 + z2) / V
    z3 = dz0 * DELTA**2 + dz_b * DELTA
    assert 1.0003 * (1 + dz0 * DELTA**2) > 1 > 1.0003 * (1 + z3)  # the premise of the test
    assert f.loc[e, "step"] == 3 and f.loc[e, "generation"] == 2
    assert f.loc[e, "share_liq:victim_lender"] == pytest.approx(dz_b * DELTA / z3, rel=1e-6)
    assert f.loc[e, "share_liq:src_a"] == pytest.approx(dz0 * DELTA**2 / z3 * 2 / 3, rel=1e-6)
    assert chain.metrics["cascade_depth"] == 2
    # the graph's longest chain is the depth: e <- b <- a
    g = chain.cascade
    assert ((g["child"] == e) & (g["parent"] == b)).any() and ((g["child"] == b) & (g["parent"] == a)).any()
    assert chain.contagion["victim_lender"]["victim_lender"] == pytest.approx(
        f.loc[e, "seized_usd"] * dz_b * DELTA / z3, rel=1e-6)
    # causes add up to what each protocol lost
    for proto, row in chain.per_protocol.items():
        total = sum(chain.causes[src][proto] for src in chain.causes)
        assert total == pytest.approx(row["liquidated_usd"], rel=1e-12, abs=1e-9)
    assert math.isclose(sum(chain.contagion["src_a"].values()) + sum(chain.contagion["src_c"].values())
                        + sum(chain.contagion["victim_lender"].values())
                        + sum(chain.causes["fundamental"].values()), chain.metrics["liquidated_usd"], rel_tol=1e-12)
