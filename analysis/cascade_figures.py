"""Cascade figures of one saved run (never re-simulating): one function per figure.

- :func:`plot_price_paths`: per asset, the fundamental, market and oracle prices with every
  step's liquidations marked by generation (marker area ~ USD seized);
- :func:`plot_generation_volume`: liquidation volume over time, stacked by generation;
- :func:`plot_contagion`: who liquidated whom, USD liquidated in each protocol by cause;
- :func:`plot_lar`: liquidation-at-risk curves, static vs with cascades, per shock and protocol.

Inputs are the files ``cascadelab run --out DIR`` writes (timeseries, fills, metrics.json)
and the LaR table of :mod:`analysis.liquidation_at_risk`; ``cascadelab cascade DIR`` draws
them all.  Generations and causes are defined in :mod:`cascadelab.cascade`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from analysis import style

__all__ = ["generation_bins", "plot_contagion", "plot_generation_volume", "plot_lar", "plot_price_paths"]


def generation_bins(max_generation: int) -> tuple[np.ndarray, list[str]]:
    """Bin edges (lower bounds) and labels: single generations up to 3, then doubling bins (4-7, 8-15, ...)."""
    lows = [g for g in range(min(max_generation, 3) + 1)]
    lo = 4
    while lo <= max_generation:
        lows.append(lo)
        lo *= 2
    labels = []
    for i, g in enumerate(lows):
        hi = min(lows[i + 1] - 1, max_generation) if i + 1 < len(lows) else max_generation
        labels.append(str(g) if hi == g else f"{g}-{hi}")
    return np.array(lows), labels


def _liquidations(fills: pd.DataFrame) -> pd.DataFrame:
    liq = fills[fills["kind"] == "liquidation"].copy()
    lows, labels = generation_bins(int(liq["generation"].max()) if len(liq) else 0)
    liq["gen_bin"] = np.searchsorted(lows, liq["generation"].to_numpy(), side="right") - 1
    liq.attrs["labels"] = labels
    return liq


def plot_price_paths(timeseries: pd.DataFrame, fills: pd.DataFrame, assets: Sequence[str],
                     protocols: Sequence[str], dt_seconds: float) -> plt.Figure:
    """Fundamental, market and oracle prices per asset; liquidations marked by generation."""
    style.apply()
    liq = _liquidations(fills)
    labels = liq.attrs["labels"]
    ramp = style.ramp(len(labels))
    hours = timeseries["step"].to_numpy() * dt_seconds / 3600.0
    fig, axes = plt.subplots(len(assets), 1, figsize=(9, 3.6 * len(assets)), sharex=True, squeeze=False)
    usd_max = float(liq["seized_usd"].groupby([liq["step"], liq["gen_bin"]]).sum().max()) if len(liq) else 1.0
    for ax, asset in zip(axes[:, 0], assets, strict=True):
        ax.plot(hours, timeseries[f"fundamental_{asset}"], color="black", lw=1.4, label="fundamental")
        ax.plot(hours, timeseries[f"market_{asset}"], color=style.colors(1)[0], lw=1.2, label="market (venue)")
        for i, p in enumerate(protocols):
            col = f"oracle_{p}_{asset}"
            if col in timeseries:
                ax.plot(hours, timeseries[col], color="0.45", lw=0.9, ls=("--", ":", "-.")[i % 3],
                        label=f"oracle of {p}")
        mine = liq[liq[f"seized_usd_{asset}"] > 0]
        if len(mine):
            agg = mine.groupby(["step", "gen_bin"], as_index=False)[f"seized_usd_{asset}"].sum()
            price = timeseries.set_index("step")[f"market_{asset}"]
            for b in sorted(agg["gen_bin"].unique()):
                g = agg[agg["gen_bin"] == b]
                ax.scatter(g["step"] * dt_seconds / 3600.0, price.loc[g["step"]].to_numpy(),
                           s=4 + 140 * g[f"seized_usd_{asset}"] / usd_max, color=ramp[b], alpha=0.75,
                           edgecolor="none", zorder=3)
        ax.set_ylabel(f"{asset} price (USD)")
        ax.set_title(f"{asset}: prices and liquidations by generation")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time (hours)")
    gen_handles = [Line2D([], [], ls="", marker="o", color=ramp[i], markersize=6) for i in range(len(labels))]
    fig.legend(gen_handles, labels, title="liquidations by generation (marker area ~ USD seized in the step;"
               " placed at the market price)", loc="lower center", ncol=len(labels), fontsize=8,
               title_fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.09 / len(assets) ** 0.5, 1, 1))
    return fig


def plot_generation_volume(fills: pd.DataFrame, dt_seconds: float, steps: int, bins: int = 96) -> plt.Figure:
    """Collateral liquidated per time bin (USD), stacked by generation."""
    style.apply()
    liq = _liquidations(fills)
    labels = liq.attrs["labels"]
    ramp = style.ramp(len(labels))
    width = max(1, int(np.ceil(steps / bins)))  # steps per bar
    edges = np.arange(0, steps + width, width)
    fig, ax = plt.subplots(figsize=(9, 4))
    bottom = np.zeros(edges.size - 1)
    mids = (edges[:-1] + width / 2) * dt_seconds / 3600.0
    for b, label in enumerate(labels):
        part = liq[liq["gen_bin"] == b]
        usd, _ = np.histogram(part["step"], bins=edges, weights=part["seized_usd"])
        ax.bar(mids, usd, width=width * dt_seconds / 3600.0, bottom=bottom, color=ramp[b], label=label,
               edgecolor="none")
        bottom += usd
    style.usd_millions(ax)
    minutes = width * dt_seconds / 60.0
    ax.set_ylabel(f"collateral liquidated per {minutes:g} min")
    ax.set_xlabel("time (hours)")
    ax.set_title("Liquidation volume by cascade generation")
    ax.legend(title="generation", ncol=min(len(labels), 5), fontsize=8, title_fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_contagion(causes: Mapping[str, Mapping[str, float]], protocols: Sequence[str]) -> plt.Figure:
    """Heatmap of USD liquidated in each protocol (columns) by cause (rows), with the column share."""
    style.apply()
    frame = pd.DataFrame(causes).T.reindex(columns=list(protocols)).fillna(0.0)
    keep = [r for r in frame.index if r.startswith("liq:") or frame.loc[r].sum() > 0]
    frame = frame.loc[keep]
    pretty = {r: ("exogenous (fundamental)" if r == "fundamental" else
                  f"liquidations of {r[4:]}" if r.startswith("liq:") else
                  f"deleveraging in {r[6:]}" if r.startswith("delev:") else "noise trading") for r in frame.index}
    share = frame / frame.sum(axis=0).replace(0.0, np.nan)
    annot = np.array([[f"${v / 1e6:,.1f}M\n{0 if np.isnan(s) else 100 * s:.0f}%" for v, s in zip(row_v, row_s, strict=True)]
                      for row_v, row_s in zip(frame.to_numpy(), share.to_numpy(), strict=True)])
    fig, ax = plt.subplots(figsize=(2.2 + 2.0 * len(protocols), 1.2 + 0.75 * len(frame)))
    sns.heatmap(frame / 1e6, annot=annot, fmt="", cmap="rocket_r", linewidths=0.5, linecolor="white",
                cbar_kws={"label": "USD liquidated (millions)"}, ax=ax,
                yticklabels=[pretty[r] for r in frame.index], xticklabels=list(protocols))
    ax.set_xlabel("protocol whose positions were liquidated")
    ax.set_ylabel("caused by")
    ax.set_title("Who liquidated whom (share of each column)")
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig


def plot_lar(curves: pd.DataFrame) -> plt.Figure:
    """LaR: share of collateral that is liquidatable vs price drop, static and with cascades, per shock."""
    style.apply()
    shocks = list(dict.fromkeys(curves["shock"]))
    protocols = list(dict.fromkeys(curves["protocol"]))
    pal = style.colors(len(protocols))
    cols = ["static_usd", "cascade_usd", "collateral_usd"]
    fig, axes = plt.subplots(1, len(shocks), figsize=(max(6.5, 4.6 * len(shocks)), 5.2), sharey=True,
                             squeeze=False)
    for ax, shock in zip(axes[0], shocks, strict=True):
        sub = curves[curves["shock"] == shock].groupby(["protocol", "drop"], as_index=False, sort=False)[cols].sum()
        total = sub.groupby("drop", as_index=False)[cols].sum()
        lines = [("all protocols", total, "black", 2.0)] + [(p, sub[sub["protocol"] == p], c, 1.4)
                                                           for p, c in zip(protocols, pal, strict=True)]
        for name, g, color, lw in lines:
            coll = g["collateral_usd"].to_numpy()
            x = 100 * g["drop"].to_numpy()
            for col, ls, what in (("cascade_usd", "-", "with cascades"), ("static_usd", "--", "static")):
                share = np.divide(g[col].to_numpy(), coll, out=np.zeros(coll.size), where=coll > 0)
                ax.plot(x, share, color=color, lw=lw if ls == "-" else lw * 0.8, ls=ls, label=f"{name}, {what}")
        ax.set_title("every asset falls" if shock == "all" else f"{shock} falls, others fixed")
        ax.set_xlabel("fall of the fundamental price (%)")
        ax.set_ylim(-0.02, 1.02)
        style.percent(ax)
    axes[0, 0].set_ylabel("share of all collateral that is liquidatable\n(USD at the shocked prices)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(protocols) + 1, fontsize=8, frameon=False)
    fig.suptitle("Liquidation at risk at t = 0: static vs with cascades", fontweight="bold")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
