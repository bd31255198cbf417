"""Historical replays: the direction and order of magnitude of real crashes.

Each replay is a scenario in experiments/scenarios/ whose header says what is taken from
the record (shared/reference/mechanisms.md section 7), what is assumed, and the tolerance
its checks use; the tolerances below are those, never tuned numbers.  A check that the
model cannot meet honestly is registered as *reported, not asserted* (status ``info``)
with the reason, rather than loosened until it passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pandas as pd

import cascadelab
from cascadelab.spec import read_toml
from cascadelab.validation.core import Abs, Check, Factor, Outcome, Within, add

SCENARIOS = Path(__file__).resolve().parents[2] / "experiments" / "scenarios"
"""experiments/scenarios/ of the source tree (the replays are not installed as package data)."""


def scenario(name: str) -> Path:
    """Path of a replay scenario; a clear error if the source tree is not at hand."""
    path = SCENARIOS / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (historical checks run from a source checkout)")
    return path


@cache
def replay(name: str, feedback: bool = True, mechanism: tuple[tuple[str, float | str], ...] = ()
           ) -> cascadelab.RunResult:
    """Run a replay scenario once per process (several checks read the same run).

    ``mechanism`` replaces the protocols' mechanism table (a counterfactual on the same market).
    """
    if not mechanism:
        return cascadelab.run(scenario(name), feedback=feedback)
    raw = read_toml(scenario(name))  # raw: the file's own mechanism need not be registered
    for proto in raw["protocols"].values():
        proto["mechanism"] = dict(mechanism)
    return cascadelab.run(raw, feedback=feedback)


def add_family(family: str, source: str, rows: tuple[tuple[str, Callable[[], Outcome], str, tuple[str, ...]], ...]
               ) -> None:
    """Register a replay's checks as ``historical.<family>.<name>``: rows of (name, fn, what, requires)."""
    for name, fn, what, requires in rows:
        add(Check(f"historical.{family}.{name}", family, source, what, fn, requires))


def liquidations(r: cascadelab.RunResult) -> pd.DataFrame:
    return r.fills[r.fills["kind"] == "liquidation"]


ZERO_BID = 0.01
"""A fill 'at or near zero': clearing price at most 1% of the market price."""


def auction_fill_frame(fills: pd.DataFrame, timeseries: pd.DataFrame, asset: str, dt_seconds: float,
                       protocol: str | None = None) -> pd.DataFrame:
    """One row per liquidation fill that took ``asset``: when, at what price, against which market price.

    Columns: step, hour, clearing_price (debt paid, USD, per unit of ``asset`` seized),
    market_price (the venue's price at the end of that step), ratio (clearing / market),
    zero_bid (ratio <= ZERO_BID), and ``bids`` when the fill log carries it (bids an
    auction received before it settled).  Works on a saved run's fills.parquet and
    timeseries.parquet as well as on a RunResult's frames.
    """
    liq = fills[(fills["kind"] == "liquidation") & (fills[f"seized_{asset}"] > 0)]
    if protocol is not None:
        liq = liq[liq["protocol"] == protocol]
    market = timeseries.set_index("step")[f"market_{asset}"].reindex(liq["step"]).to_numpy()
    price = liq["paid_usd"].to_numpy() / liq[f"seized_{asset}"].to_numpy()
    out = pd.DataFrame({
        "step": liq["step"].to_numpy(),
        "hour": liq["step"].to_numpy() * dt_seconds / 3600.0,
        "clearing_price": price,
        "market_price": market,
        "ratio": price / market,
    }, index=liq.index)
    out["zero_bid"] = out["ratio"] <= ZERO_BID
    if "bids" in liq.columns:
        out["bids"] = liq["bids"].to_numpy()
    return out


def clearing_price_ratio(r: cascadelab.RunResult, asset: str) -> pd.Series:
    """Per liquidation fill of ``asset``: price paid per unit seized over the market price at that step."""
    return auction_fill_frame(r.fills, r.timeseries, asset, r.spec.run.dt_seconds)["ratio"]


# ============================================================================ Aave v2 CRV, Nov 2022

CRV = "aave_crv_2022.toml"
CRV_SOURCE = "mechanisms.md 7.3 (Blockworks)"


def crv_bad_debt_usd() -> Outcome:
    """Bad debt in USD: record ~$1.6-1.7M (2.64M CRV); order of magnitude, x[0.5, 5]."""
    return Outcome(1.6e6, replay(CRV).metrics["bad_debt_usd"], Factor(0.5, 5.0), "usd")


def crv_bad_debt_units() -> Outcome:
    """Bad debt in CRV written off: record 2.64M CRV; x[0.5, 5]."""
    wo = replay(CRV).fills
    units = float(wo.loc[wo["kind"] == "write_off", "written_off"].sum())
    return Outcome(2.64e6, units, Factor(0.5, 5.0), "CRV")


def crv_squeeze_attribution() -> Outcome:
    """Same draws with venues that never move: the bad debt comes from the debt-asset squeeze
    (keepers buying CRV push its price and the oracle up), so without impact it is <= 10% of it."""
    with_impact = replay(CRV).metrics["bad_debt_usd"]
    without = replay(CRV, feedback=False).metrics["bad_debt_usd"]
    return Outcome(0.0, without / with_impact if with_impact > 0 else math.inf, Within(0.0, 0.1), "pct",
                   expected_text="~0 (<= 10%)", note="bad debt without price impact / with it")


def crv_fill_count() -> Outcome:
    """Reported, not asserted: 385 liquidation transactions in the record (see the scenario header)."""
    return Outcome(385.0, float(len(liquidations(replay(CRV)))), Factor(0.2, 5.0), asserted=False,
                   note="one venue stands for all CRV liquidity: keepers take larger clips than the record's")


def crv_duration() -> Outcome:
    """Reported, not asserted: the record's liquidation lasted ~50 minutes."""
    r = replay(CRV)
    steps = liquidations(r)["step"]
    minutes = float(steps.max() - steps.min()) * r.spec.run.dt_seconds / 60 if len(steps) else 0.0
    return Outcome(50.0, minutes, Factor(0.2, 5.0), "min", asserted=False,
                   note="larger clips clear the position in minutes (see the scenario header)")


add_family("crv", CRV_SOURCE, (
    ("bad_debt_usd", crv_bad_debt_usd, "bad debt, USD", ()),
    ("bad_debt_crv", crv_bad_debt_units, "bad debt, CRV units", ()),
    ("squeeze_attribution", crv_squeeze_attribution, "bad debt without price impact (share)", ()),
    ("fill_count", crv_fill_count, "number of liquidation fills", ()),
    ("duration", crv_duration, "first to last liquidation", ()),
))


# ============================================================================ debt-asset market (Klages-Mundt & Minca)

DEEP, INELASTIC = "debt_market_deep.toml", "debt_market_inelastic.toml"
KMM_SOURCE = "Klages-Mundt & Minca 2021"


def _debt_market(name: str) -> dict[str, float]:
    r = replay(name)
    ts = r.timeseries
    return {
        "bad_debt": r.metrics["bad_debt_usd"],
        "min_ratio": float((ts["market_ETH"] / ts["fundamental_ETH"]).min()),
        "max_dai": float(ts["market_DAI"].max()),
    }


def debt_market_price() -> Outcome:
    """Repurchases of the stablecoin push its price up further on the inelastic market."""
    deep, inel = _debt_market(DEEP), _debt_market(INELASTIC)
    return Outcome(deep["max_dai"], inel["max_dai"], Within(deep["max_dai"] + 0.01),
                   expected_text=f"> deep ({deep['max_dai']:.4f})", note="max stablecoin price")


def debt_market_drawdown() -> Outcome:
    """... so deleveraging takes more collateral sales: a deeper ETH market drawdown below the
    fundamental (got = min P/F on the deep market minus min P/F on the inelastic one, > 0)."""
    deep, inel = _debt_market(DEEP), _debt_market(INELASTIC)
    return Outcome(0.0, deep["min_ratio"] - inel["min_ratio"], Within(1e-3), "pct", expected_text="> 0",
                   note=f"min ETH market/fundamental: deep {deep['min_ratio']:.3f}, inelastic {inel['min_ratio']:.3f}")


def debt_market_bad_debt() -> Outcome:
    """... and more bad debt (got = inelastic minus deep, > 0)."""
    deep, inel = _debt_market(DEEP), _debt_market(INELASTIC)
    return Outcome(0.0, inel["bad_debt"] - deep["bad_debt"], Within(1.0), "usd", expected_text="> 0",
                   note=f"bad debt: deep ${deep['bad_debt']:,.0f}, inelastic ${inel['bad_debt']:,.0f}")


add_family("debt_market", KMM_SOURCE, (
    ("stablecoin_price", debt_market_price, "inelastic stablecoin market: higher stablecoin price", ()),
    ("drawdown", debt_market_drawdown, "... deeper collateral drawdown", ()),
    ("bad_debt", debt_market_bad_debt, "... more bad debt", ()),
))


# ============================================================================ Black Thursday, March 2020

BT, BT_DUTCH = "black_thursday.toml", "black_thursday_dutch.toml"
BT_SOURCE = "mechanisms.md 7.1 (White Rabbit)"


def zero_bid_share(r: cascadelab.RunResult) -> float:
    """Share of settled ETH auctions (liquidation fills) cleared at or near zero (``ZERO_BID``)."""
    ratio = clearing_price_ratio(r, "ETH")
    return float((ratio <= ZERO_BID).mean()) if len(ratio) else math.nan


def zero_bid_value_usd(r: cascadelab.RunResult) -> float:
    """USD value (market price at the fill) of the ETH won at or near zero."""
    frame = auction_fill_frame(r.fills, r.timeseries, "ETH", r.spec.run.dt_seconds)
    won = frame[frame["zero_bid"]]
    return float((r.fills.loc[won.index, "seized_ETH"] * won["market_price"]).sum())


def bt_fixed_spread() -> Outcome:
    """The same market with atomic 5% fixed-spread liquidations (Compound, dYdX): solvent (bad debt <= 0.5%)."""
    r = replay(BT, mechanism=(("kind", "fixed_bonus"), ("bonus", 0.05), ("close_factor", 0.5)))
    return Outcome(0.0, r.metrics["bad_debt_frac"], Within(0.0, 0.005), "pct", expected_text="~0 (solvent)",
                   note=f"{r.metrics['liquidation_count']:.0f} fills, ${r.metrics['liquidated_usd']:,.0f} seized")


def bt_english_zero_bids() -> Outcome:
    """English auctions (Liquidations 1.0): share of auctions settled at or near zero; record 36%, within [10%, 90%]."""
    r = replay(BT)
    n = len(clearing_price_ratio(r, "ETH"))
    return Outcome(0.36, zero_bid_share(r), Within(0.10, 0.90), "pct",
                   note=f"of {n:,} auctions settled (a few keepers still transacting; see the scenario's SENSITIVITY)")


def bt_english_deficit() -> Outcome:
    """Protocol deficit on the real debt size: record 5.67M DAI; x[0.2, 5]."""
    r = replay(BT)
    debt = float(r.timeseries["debt_usd_maker"].iloc[0])
    return Outcome(5.67e6, r.metrics["bad_debt_usd"], Factor(0.2, 5.0), "usd",
                   note=f"on ${debt / 1e6:,.0f}M of initial debt")


def bt_english_zero_bid_value() -> Outcome:
    """ETH won at or near zero, valued at the market price: record $8.32M; x[0.2, 5]."""
    return Outcome(8.32e6, zero_bid_value_usd(replay(BT)), Factor(0.2, 5.0), "usd")


def bt_dutch_zero_fills() -> Outcome:
    """Dutch auctions (Liquidations 2.0) on the same market and keepers: no fill at or near zero."""
    r = replay(BT_DUTCH)
    ratio = clearing_price_ratio(r, "ETH")
    return Outcome(0.0, float((ratio <= ZERO_BID).sum()), Abs(0.0),
                   note=f"of {len(ratio):,} fills; lowest clearing price {ratio.min():.0%} of the market")


def bt_dutch_less_bad_debt() -> Outcome:
    """... and less bad debt than the English auction (got = Dutch / English bad debt, < 1)."""
    english = replay(BT).metrics["bad_debt_usd"]
    dutch = replay(BT_DUTCH).metrics["bad_debt_usd"]
    return Outcome(0.0, dutch / english if english > 0 else math.inf, Within(0.0, 0.999), expected_text="< 1",
                   note=f"Dutch ${dutch:,.0f} vs English ${english:,.0f}")


add_family("black_thursday", BT_SOURCE, (
    ("fixed_spread", bt_fixed_spread, "same market, 5% fixed spread: solvent", ()),
    ("zero_bid_share", bt_english_zero_bids, "English auctions settled at ~0", ("english_auction",)),
    ("deficit", bt_english_deficit, "English auctions: protocol deficit", ("english_auction",)),
    ("zero_bid_value", bt_english_zero_bid_value, "English auctions: ETH won at ~0, USD", ("english_auction",)),
    ("dutch_zero_fills", bt_dutch_zero_fills, "Dutch auctions: fills at ~0", ("dutch_auction",)),
    ("dutch_less_bad_debt", bt_dutch_less_bad_debt, "Dutch / English bad debt", ("dutch_auction", "english_auction")),
))


# ============================================================================ 10-11 October 2025

OCT = "october_2025.toml"
OCT_SOURCE = "mechanisms.md 7.5 (Chaos Labs)"
LENDING = ("aave", "morpho")


def _shares() -> dict[str, float]:
    """Liquidated debt / initial debt for the lending protocols together and for the perp venue."""
    r = replay(OCT)
    ts = r.timeseries

    def share(protocols: tuple[str, ...]) -> float:
        repaid = sum(r.per_protocol[p]["liquidated_debt_usd"] for p in protocols)
        return repaid / sum(float(ts[f"debt_usd_{p}"].iloc[0]) for p in protocols)

    lending_bad = sum(r.per_protocol[p]["bad_debt_usd"] for p in LENDING)
    lending_liq = sum(r.per_protocol[p]["liquidated_usd"] for p in LENDING)
    return {"lending": share(LENDING), "perp": share(("perp",)),
            "bad_over_liq": lending_bad / lending_liq if lending_liq > 0 else math.nan}


def oct_lending_share() -> Outcome:
    """Lending liquidated share of borrows: record 0.22%-1.11% (Aave 0.66%); within [0.1%, 3%].
    Driven mostly by the assumed health distribution (see the scenario header)."""
    return Outcome(0.0066, _shares()["lending"], Within(0.001, 0.03), "pct",
                   expected_text="0.22-1.11% (Aave 0.66%)")


def oct_bad_debt_ratio() -> Outcome:
    """Lending bad debt / liquidated: record Aave ~0.2% (~$0.4M on ~$180M); within [0, 5%]."""
    return Outcome(0.002, _shares()["bad_over_liq"], Within(0.0, 0.05), "pct", expected_text="~0.2% (Aave)")


def oct_perp_vs_lending() -> Outcome:
    """Perp-style liquidations (full position, maintenance-margin bonus) hit a far larger share than lending:
    record ~9% of perp OI (~18% of longs) vs ~0.7% of borrows; asserted ratio >= 5."""
    s = _shares()
    return Outcome(13.0, s["perp"] / s["lending"], Within(5.0), expected_text="~13x (9% vs 0.66%)",
                   note=f"perp {100 * s['perp']:.1f}% vs lending {100 * s['lending']:.2f}%")


add_family("oct2025", OCT_SOURCE, (
    ("lending_liquidated_share", oct_lending_share, "lending: liquidated share of borrows", ()),
    ("lending_bad_debt_ratio", oct_bad_debt_ratio, "lending: bad debt / liquidated", ()),
    ("perp_vs_lending", oct_perp_vs_lending, "perp liquidated share / lending share", ()),
))


def replay_names() -> list[str]:
    """Every replay scenario a check reads (for tests that each one loads)."""
    return [CRV, DEEP, INELASTIC, BT, BT_DUTCH, OCT]


__all__ = ["SCENARIOS", "ZERO_BID", "auction_fill_frame", "clearing_price_ratio", "replay", "replay_names", "scenario",
           "zero_bid_share", "zero_bid_value_usd"]
