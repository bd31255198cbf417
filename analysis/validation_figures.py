"""Figures for the validation section, drawn from saved runs only (never re-simulating).

The Black Thursday figure shows the zero-bid mechanism of English auctions: over time,
(a) the market price against the clearing price of every settled auction (zero bids
marked), (b) auctions settled per hour, split into those won at or near zero and the
rest, and (c) the bids each auction drew when the fill log carries a ``bids`` column,
else the gas price that kept keepers out.  Input is a run directory written by
``cascadelab run SPEC --out DIR`` (fills.parquet, timeseries.parquet, spec.json).

    python -m analysis.validation_figures RUN_DIR --out black_thursday.png [--asset ETH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from cascadelab.validation.historical import auction_fill_frame  # noqa: E402

__all__ = ["auction_fill_frame", "hourly_auctions", "plot_zero_bids", "load_run", "main"]


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


def plot_zero_bids(frame: pd.DataFrame, timeseries: pd.DataFrame, asset: str, dt_seconds: float,
                   title: str = "English auctions: clearing prices and zero bids") -> plt.Figure:
    """The three-panel zero-bid figure (see the module docstring); returns the Figure."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True, height_ratios=[2.2, 1.2, 1.0])
    hours = timeseries["step"].to_numpy() * dt_seconds / 3600.0

    ax = axes[0]
    ax.plot(hours, timeseries[f"market_{asset}"], color="black", lw=1.2, label=f"{asset} market price")
    oracle = [c for c in timeseries.columns if c.startswith("oracle_") and c.endswith(f"_{asset}")]
    if oracle:
        ax.plot(hours, timeseries[oracle[0]], color="grey", lw=1.0, ls="--", label="oracle price")
    priced = frame[~frame["zero_bid"]]
    zero = frame[frame["zero_bid"]]
    ax.scatter(priced["hour"], priced["clearing_price"], s=10, color="tab:blue", alpha=0.6,
               label="clearing price (per unit seized)")
    ax.scatter(zero["hour"], zero["clearing_price"], s=16, color="tab:red", marker="x",
               label="won at or near zero")
    ax.set_ylabel("USD")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)

    per_hour = hourly_auctions(frame)
    ax = axes[1]
    ax.bar(per_hour.index + 0.5, per_hour["settled"] - per_hour["zero_bid"], width=0.9, color="tab:blue",
           label="settled above zero")
    ax.bar(per_hour.index + 0.5, per_hour["zero_bid"], width=0.9, bottom=per_hour["settled"] - per_hour["zero_bid"],
           color="tab:red", label="settled at ~0")
    ax.set_ylabel("auctions / hour")
    ax.legend(loc="upper right", fontsize=8)

    ax = axes[2]
    if "bids" in per_hour.columns:
        ax.bar(per_hour.index + 0.5, per_hour["bids"] / per_hour["settled"], width=0.9, color="tab:purple")
        ax.set_ylabel("bids / auction")
    else:
        ax.plot(hours, timeseries["gas_gwei"], color="tab:orange", lw=1.0)
        ax.set_ylabel("gas (gwei)")
    ax.set_xlabel("hours from start")
    fig.tight_layout()
    return fig


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """fills, timeseries and dt_seconds of a saved run."""
    d = Path(run_dir)
    spec = json.loads((d / "spec.json").read_text())
    return pd.read_parquet(d / "fills.parquet"), pd.read_parquet(d / "timeseries.parquet"), float(
        spec["run"]["dt_seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Black Thursday zero-bid figure from a saved run")
    parser.add_argument("run_dir")
    parser.add_argument("--out", required=True)
    parser.add_argument("--asset", default="ETH")
    parser.add_argument("--protocol", default=None)
    args = parser.parse_args(argv)
    fills, ts, dt = load_run(args.run_dir)
    frame = auction_fill_frame(fills, ts, args.asset, dt, args.protocol)
    fig = plot_zero_bids(frame, ts, args.asset, dt)
    fig.savefig(args.out, dpi=150)
    plt.close(fig)
    summary = hourly_auctions(frame)
    print(f"{len(frame)} auctions settled, {int(frame['zero_bid'].sum())} at or near zero "
          f"({100 * frame['zero_bid'].mean() if len(frame) else 0:.1f}%), over {len(summary)} hours -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
