"""``cascadelab cascade RUN_DIR [--out FIGDIR] [--no-lar]``: cascade maps of a saved run.

Reads what ``cascadelab run SPEC --out RUN_DIR`` wrote (timeseries, fills, metrics.json,
spec.json) and draws, as PNG and PDF: the price paths with liquidations by generation, the
liquidation volume by generation, the contagion heatmap and the liquidation-at-risk curves
(static vs with cascades, for the book at t=0, rebuilt from the saved spec and seed: the
initial book, not a re-simulation).  Writes the LaR tables and the ranking of assets and
protocols as CSV beside the figures and prints the ranking.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from cascadelab.spec import load_spec

FIGURES = ("price_paths", "generation_volume", "contagion", "lar")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("cascade", help="draw the cascade maps of a saved run",
                       description="Cascade figures and liquidation-at-risk ranking of a run saved with `run --out`.")
    p.add_argument("run_dir", type=Path, help="directory written by `cascadelab run ... --out DIR`")
    p.add_argument("--out", type=Path, default=None, help="where figures and tables go (default: RUN_DIR/figures)")
    p.add_argument("--no-lar", action="store_true", help="skip the liquidation-at-risk curves (faster)")
    return p


def load_run(run_dir: Path) -> dict:
    """The saved run's frames and JSON; raises UsageError naming what is missing."""
    from cascadelab.cli import UsageError

    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: not a directory (write one with `cascadelab run SPEC --out DIR`)")
    need = ("timeseries.parquet", "fills.parquet", "metrics.json", "spec.json")
    missing = [n for n in need if not (run_dir / n).is_file()]
    if missing:
        raise UsageError(f"{run_dir}: missing {', '.join(missing)} (written by `cascadelab run SPEC --out DIR`)")
    fills = pd.read_parquet(run_dir / "fills.parquet")
    if "generation" not in fills:
        raise UsageError(f"{run_dir}: fills.parquet has no generation column (saved by an older cascadelab)")
    return {
        "timeseries": pd.read_parquet(run_dir / "timeseries.parquet"),
        "fills": fills,
        "metrics": json.loads((run_dir / "metrics.json").read_text()),
        "spec": json.loads((run_dir / "spec.json").read_text()),
    }


def main(args: argparse.Namespace) -> int:
    from analysis import cascade_figures as figs
    from analysis import style
    from analysis.liquidation_at_risk import initial_snapshot, lar_table, ranking

    run = load_run(args.run_dir)
    out = args.out if args.out is not None else args.run_dir / "figures"
    spec = load_spec(run["spec"])
    assets, protocols, dt = spec.asset_names, spec.protocol_names, spec.run.dt_seconds
    written = []
    written += style.save(figs.plot_price_paths(run["timeseries"], run["fills"], assets, protocols, dt),
                          out / "price_paths")
    written += style.save(figs.plot_generation_volume(run["fills"], dt, spec.run.steps), out / "generation_volume")
    written += style.save(figs.plot_contagion(run["metrics"]["causes"], protocols), out / "contagion")
    m = run["metrics"]["metrics"]
    print(f"cascade depth {m['cascade_depth']:.0f} generations; induced share {100 * m['induced_share']:.1f}%; "
          f"never liquidatable at the fundamental {100 * m['cascade_only_share']:.1f}%")
    if "cascade_multiplier" in m:
        print(f"cascade multiplier {m['cascade_multiplier']:.3f} "
              f"(${m['liquidated_usd']:,.0f} vs ${m['liquidated_usd_without_feedback']:,.0f} without feedback)")
    print("contagion (USD liquidated in column protocol caused by liquidation sales of row protocol):")
    print(pd.DataFrame(run["metrics"]["contagion"]).T.reindex(columns=protocols).map(lambda v: f"${v:,.0f}")
          .to_string())
    if not args.no_lar:
        seed = run["metrics"]["seed"]
        snap = initial_snapshot(spec, np.random.SeedSequence(seed["entropy"], spawn_key=tuple(seed["spawn_key"])))
        curves, info = lar_table(snap)
        rank = ranking(curves)
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in (("lar_curves", curves), ("lar_rounds", info), ("lar_ranking", rank)):
            frame.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")
            written.append(out / f"{name}.csv")
        written += style.save(figs.plot_lar(curves), out / "lar")
        print("\nmost at risk (mean share of collateral liquidatable over price drops 0-30%, with cascades):")
        print(rank[["kind", "rank", "name", "static_share", "cascade_share", "first_drop"]]
              .to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nwrote {len(written)} files to {out}/")
    return 0
