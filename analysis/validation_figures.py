"""Figures for the validation section, drawn from saved runs only (never re-simulating).

The Black Thursday figure shows the zero-bid mechanism of English auctions over time:

(a) the market and oracle prices against the clearing price of every settled auction (debt
    paid per unit of collateral won; those won at or near zero marked).  A lot won at tab
    without competition for the dent phase clears below the market (tab / lot); competing
    dents push it up to the market price; an uncontested zero bid clears at ~0;
(b) auctions settled per hour, split into those won at or near zero and the rest;
(c) bids per auction, when the fill log carries a ``bids`` column;
(d) the gas price against each keeper group's gas cap, with the hours in which that group
    could not get a transaction in shaded, and the number of keepers still able to bid.

Input is a run directory written by ``cascadelab run SPEC --out DIR`` (fills.parquet,
timeseries.parquet, spec.json; the keeper groups are read from spec.json when present).

    python -m analysis.validation_figures RUN_DIR --out black_thursday.png [--asset ETH] [--protocol NAME]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import style  # noqa: E402
from cascadelab.validation.historical import ZERO_BID, auction_fill_frame  # noqa: E402

__all__ = ["KeeperGroup", "SavedRun", "auction_fill_frame", "hourly_auctions", "keeper_groups", "keepers_able",
           "load_run", "main", "plot_zero_bids"]


@dataclass(frozen=True)
class KeeperGroup:
    """One keeper group of a run: how many, their strategy and the gas price above which they are out."""

    name: str
    count: int
    strategy: str
    max_gas_gwei: float


@dataclass(frozen=True)
class SavedRun:
    """What the figure reads from a run directory."""

    fills: pd.DataFrame
    timeseries: pd.DataFrame
    dt_seconds: float
    keepers: tuple[KeeperGroup, ...]


def keeper_groups(spec: dict[str, Any]) -> tuple[KeeperGroup, ...]:
    """Keeper groups of a resolved spec (spec.json): the main group, then ``liquidators.groups``."""
    liq = spec.get("liquidators")
    if not liq:
        return ()
    groups = [("main", liq), *liq.get("groups", {}).items()]
    return tuple(KeeperGroup(name, int(g["count"]), str(g.get("strategy", "default")),
                             float(g.get("max_gas_gwei", math.inf))) for name, g in groups if g["count"] > 0)


def keepers_able(groups: tuple[KeeperGroup, ...], gas_gwei: np.ndarray) -> np.ndarray:
    """Keepers that can get a transaction in at each gas price (cap >= gas, as Liquidator.can_transact)."""
    able = np.zeros(len(gas_gwei), dtype=np.int64)
    for g in groups:
        able += g.count * (np.asarray(gas_gwei) <= g.max_gas_gwei)
    return able


def hourly_auctions(frame: pd.DataFrame) -> pd.DataFrame:
    """Per hour: auctions settled, those at or near zero, their share, and bids (if logged)."""
    hour = np.floor(frame["hour"]).astype(int)
    g = frame.groupby(hour)
    out = pd.DataFrame({"settled": g.size(), "zero_bid": g["zero_bid"].sum().astype(int)})
    out["zero_share"] = out["zero_bid"] / out["settled"]
    if "bids" in frame.columns:
        out["bids"] = g["bids"].sum()
    out.index.name = "hour"
    return out


def _shade_above(ax: plt.Axes, hours: np.ndarray, above: np.ndarray, color: tuple[float, float, float]) -> None:
    """Shade the spans of ``hours`` where ``above`` holds."""
    edges = np.flatnonzero(np.diff(np.r_[0, above.astype(np.int8), 0]))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        ax.axvspan(hours[start], hours[min(stop, len(hours) - 1)], color=color, alpha=0.10, lw=0, zorder=0)


def plot_zero_bids(frame: pd.DataFrame, timeseries: pd.DataFrame, asset: str, dt_seconds: float,
                   keepers: tuple[KeeperGroup, ...] = (),
                   title: str = "English auctions: clearing prices and zero bids") -> plt.Figure:
    """The zero-bid figure (see the module docstring); returns the Figure."""
    style.apply()
    palette = style.colors(4)
    blue, green, red = palette[0], palette[2], palette[3]
    has_bids = "bids" in frame.columns
    ratios = [2.4, 1.3, *([0.9] if has_bids else []), 1.1]
    fig, axes = plt.subplots(len(ratios), 1, figsize=(8.5, 2.3 * sum(ratios) + 0.6), sharex=True,
                             height_ratios=ratios)
    hours = timeseries["step"].to_numpy() * dt_seconds / 3600.0
    n, n_zero = len(frame), int(frame["zero_bid"].sum())

    ax = axes[0]
    ax.plot(hours, timeseries[f"market_{asset}"], color="black", lw=1.2, label=f"{asset} market price", zorder=3)
    oracle = [c for c in timeseries.columns if c.startswith("oracle_") and c.endswith(f"_{asset}")
              and not c.startswith(("oracle_step_", "oracle_fundamental_"))]
    if oracle:
        ax.plot(hours, timeseries[oracle[0]], color="grey", lw=1.0, ls="--", drawstyle="steps-post",
                label=f"oracle price ({oracle[0][len('oracle_'):-len(asset) - 1]})", zorder=3)
    priced, zero = frame[~frame["zero_bid"]], frame[frame["zero_bid"]]
    ax.scatter(priced["hour"], priced["clearing_price"], s=8, color=blue, alpha=0.35, lw=0,
               label=f"clearing price: debt paid / {asset} won ({n - n_zero:,} auctions)")
    ax.scatter(zero["hour"], zero["clearing_price"], s=18, color=red, marker="x", lw=0.8,
               label=f"won at <= {ZERO_BID:.0%} of the market ({n_zero:,})")
    ax.set_ylabel("USD per " + asset)
    ax.set_ylim(bottom=-0.04 * float(timeseries[f"market_{asset}"].max()))
    share = f"{n_zero / n:.0%}" if n else "n/a"
    ax.set_title(f"{title}\n{n_zero:,} of {n:,} settled auctions ({share}) won at or near zero")
    ax.legend(loc="upper right", fontsize=8)  # the zero bids sit along the bottom

    per_hour = hourly_auctions(frame)
    ax = axes[1]
    priced_n = per_hour["settled"] - per_hour["zero_bid"]
    ax.bar(per_hour.index + 0.5, priced_n, width=0.9, color=blue, label="settled above zero")
    ax.bar(per_hour.index + 0.5, per_hour["zero_bid"], width=0.9, bottom=priced_n, color=red,
           label="settled at ~0")
    ax.set_ylabel("auctions settled\nper hour")
    ax.legend(loc="upper left", fontsize=8)

    if has_bids:
        ax = axes[2]
        ax.bar(per_hour.index + 0.5, per_hour["bids"] / per_hour["settled"], width=0.9, color=green)
        ax.set_ylabel("bids per auction")

    ax = axes[-1]
    gas = timeseries["gas_gwei"].to_numpy()
    ax.plot(hours, gas, color="black", lw=1.2, label="gas price")
    caps = sorted({g.max_gas_gwei for g in keepers if math.isfinite(g.max_gas_gwei) and g.max_gas_gwei < gas.max()})
    for g in keepers:
        if g.max_gas_gwei in caps:
            ax.axhline(g.max_gas_gwei, color=red, lw=0.9, ls="--",
                       label=f"gas cap of the {g.count} '{g.name}' keepers: they are out when shaded")
    for cap in caps:
        for a in axes:  # the same hours on every panel: the zero bids fall inside them
            _shade_above(a, hours, gas > cap, red)
    ax.set_ylabel("gas (gwei)")
    ax.set_ylim(bottom=0)
    if keepers:
        levels = [0.0, *caps]
        able = [int(keepers_able(keepers, np.array([c + 1e-9]))[0]) for c in levels]
        text = ", ".join(f"{n} above {c:g} gwei" for c, n in zip(levels[1:], able[1:], strict=True))
        ax.set_title(f"keepers able to get a bid in: {able[0]} in calm blocks" + (f", {text}" if text else ""),
                     fontsize=9, fontweight="normal")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("hours from the start of the run")
    fig.tight_layout()
    return fig


def load_run(run_dir: str | Path) -> SavedRun:
    """fills, timeseries, dt_seconds and keeper groups of a saved run."""
    d = Path(run_dir)
    spec = json.loads((d / "spec.json").read_text())
    return SavedRun(pd.read_parquet(d / "fills.parquet"), pd.read_parquet(d / "timeseries.parquet"),
                    float(spec["run"]["dt_seconds"]), keeper_groups(spec))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Black Thursday zero-bid figure from a saved run")
    parser.add_argument("run_dir")
    parser.add_argument("--out", required=True)
    parser.add_argument("--asset", default="ETH")
    parser.add_argument("--protocol", default=None)
    args = parser.parse_args(argv)
    run = load_run(args.run_dir)
    frame = auction_fill_frame(run.fills, run.timeseries, args.asset, run.dt_seconds, args.protocol)
    fig = plot_zero_bids(frame, run.timeseries, args.asset, run.dt_seconds, run.keepers)
    fig.savefig(args.out, metadata={"Software": None})
    plt.close(fig)
    summary = hourly_auctions(frame)
    print(f"{len(frame)} auctions settled, {int(frame['zero_bid'].sum())} at or near zero "
          f"({100 * frame['zero_bid'].mean() if len(frame) else 0:.1f}%), over {len(summary)} hours -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
