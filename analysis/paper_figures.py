"""Every figure of the report: one named function each, reading saved results only.

``FIGURES`` maps a figure's name to the result files it reads and the function that draws it
(``draw(results_root, out_stem) -> files written``).  The drawing itself lives in the figure
modules (cascade_figures, sensitivity_figures, validation_figures), so the report and the
``cascadelab cascade`` / ``figures`` commands show the same pictures; nothing here simulates.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import cascade_figures, sensitivity_figures, style, validation_figures
from cascadelab.spec import load_spec


@dataclass(frozen=True)
class PaperFigure:
    """A figure of the report: what it shows, the result files it reads, how it is drawn."""

    name: str
    caption: str
    inputs: tuple[str, ...]
    draw: Callable[[Path, Path], list[Path]]


def _run(root: Path, name: str) -> dict:
    d = root / "runs" / name
    return {
        "timeseries": pd.read_parquet(d / "timeseries.parquet"),
        "fills": pd.read_parquet(d / "fills.parquet"),
        "metrics": json.loads((d / "metrics.json").read_text()),
        "spec": load_spec(json.loads((d / "spec.json").read_text())),
    }


def _run_inputs(name: str, *extra: str) -> tuple[str, ...]:
    return tuple(f"runs/{name}/{f}" for f in ("timeseries.parquet", "fills.parquet", "metrics.json", "spec.json",
                                              *extra))


def price_paths(run: str) -> Callable[[Path, Path], list[Path]]:
    def draw(root: Path, out: Path) -> list[Path]:
        r = _run(root, run)
        spec = r["spec"]
        fig = cascade_figures.plot_price_paths(r["timeseries"], r["fills"], spec.asset_names, spec.protocol_names,
                                               spec.run.dt_seconds)
        return style.save(fig, out)
    return draw


def generation_volume(run: str) -> Callable[[Path, Path], list[Path]]:
    def draw(root: Path, out: Path) -> list[Path]:
        r = _run(root, run)
        fig = cascade_figures.plot_generation_volume(r["fills"], r["spec"].run.dt_seconds, r["spec"].run.steps)
        return style.save(fig, out)
    return draw


def contagion(run: str) -> Callable[[Path, Path], list[Path]]:
    def draw(root: Path, out: Path) -> list[Path]:
        d = root / "runs" / run
        metrics = json.loads((d / "metrics.json").read_text())
        protocols = load_spec(json.loads((d / "spec.json").read_text())).protocol_names
        return style.save(cascade_figures.plot_contagion(metrics["causes"], protocols), out)
    return draw


def lar(run: str) -> Callable[[Path, Path], list[Path]]:
    def draw(root: Path, out: Path) -> list[Path]:
        curves = pd.read_csv(root / "runs" / run / "lar_curves.csv")
        return style.save(cascade_figures.plot_lar(curves), out)
    return draw


def zero_bids(run: str) -> Callable[[Path, Path], list[Path]]:
    def draw(root: Path, out: Path) -> list[Path]:
        saved = validation_figures.load_run(root / "runs" / run)
        asset = json.loads((root / "runs" / run / "spec.json").read_text())["gas"]["token"]
        frame = validation_figures.auction_fill_frame(saved.fills, saved.timeseries, asset, saved.dt_seconds, None)
        fig = validation_figures.plot_zero_bids(frame, saved.timeseries, asset, saved.dt_seconds, saved.keepers)
        return style.save(fig, out)
    return draw


def sweep_figure(sweep: str, fn: Callable) -> Callable[[Path, Path], list[Path]]:
    """A sweep figure from sensitivity_figures, written as ``out`` (its own file name replaced)."""
    def draw(root: Path, out: Path) -> list[Path]:
        style.apply()
        written = fn(sensitivity_figures.load_figure_inputs(root / "sweeps" / sweep), out.parent / ".tmp")
        moved = []
        for p in written:
            target = out.with_suffix(p.suffix)
            p.replace(target)
            moved.append(target)
        (out.parent / ".tmp").rmdir()
        return moved
    return draw


def _sweep_inputs(sweep: str) -> tuple[str, ...]:
    return (f"sweeps/{sweep}/manifest.json", f"sweeps/{sweep}/runs", f"sweeps/{sweep}/analysis/analysis.json")


FIGURES: dict[str, PaperFigure] = {f.name: f for f in (
    PaperFigure("default_price_paths", "The default scenario: fundamental, market and oracle prices of ETH; dots mark "
                "liquidations, coloured by cascade generation, sized by USD seized.",
                _run_inputs("default"), price_paths("default")),
    PaperFigure("default_generation_volume", "Collateral liquidated per 15 minutes in the default scenario, stacked "
                "by cascade generation (0: caused by the fundamental move alone).",
                _run_inputs("default"), generation_volume("default")),
    PaperFigure("default_contagion", "Who liquidated whom in the default scenario: USD liquidated in each protocol "
                "(columns) by the source of the price move that pushed the position under (rows).",
                _run_inputs("default"), contagion("default")),
    PaperFigure("default_lar", "Liquidation at risk of the default book at t = 0: collateral liquidatable after an "
                "ETH fall, static (Perez et al. 2021) and with the book's own liquidations fed back through the "
                "pool.", _run_inputs("default", "lar_curves.csv"), lar("default")),
    PaperFigure("contagion_scenario", "Contagion between two lenders on one thin venue: liquidations in the sound "
                "lender are caused by the fragile lender's sales.", _run_inputs("contagion"), contagion("contagion")),
    PaperFigure("depeg_price_paths", "Correlated collateral with a broken correlation: ETH and stETH prices and "
                "liquidations by generation when stETH depegs.", _run_inputs("depeg"), price_paths("depeg")),
    PaperFigure("depeg_lar", "Liquidation at risk when each collateral asset falls alone and together (stETH "
                "depeg scenario).", _run_inputs("depeg", "lar_curves.csv"), lar("depeg")),
    PaperFigure("black_thursday_zero_bids", "Black Thursday replay (Maker Liquidations 1.0): clearing prices of the "
                "English auctions against the market and oracle prices, auctions won at about zero per hour, and the "
                "gas price against the keepers' caps (shaded: hours in which most keepers could not transact).",
                _run_inputs("black_thursday"), zero_bids("black_thursday")),
    PaperFigure("families_comparison", "The five mechanism families on identical draws: distributions of bad debt "
                "and maximum price impact, and paired differences against the best design.",
                _sweep_inputs("families"), sweep_figure("families", sensitivity_figures.mechanism_comparison)),
    PaperFigure("families_pareto", "Mean maximum price impact against mean bad debt per design, with bootstrap "
                "confidence intervals; the Pareto front is marked.",
                _sweep_inputs("families"), sweep_figure("families", sensitivity_figures.pareto_plot)),
    PaperFigure("families_morris", "Morris screening per design: mean absolute elementary effect (mu*) against "
                "its spread (sigma) for each uncertain input.",
                _sweep_inputs("families"), sweep_figure("families", sensitivity_figures.morris_mu_sigma)),
    PaperFigure("sensitivity_sobol", "Sobol' first-order (S1) and total (ST) indices with 95% bootstrap intervals "
                "for the production fixed-bonus design.",
                _sweep_inputs("sensitivity"), sweep_figure("sensitivity", sensitivity_figures.index_bars)),
    PaperFigure("sensitivity_top_parameter", "Each output against its most influential input (Sobol' study).",
                _sweep_inputs("sensitivity"),
                sweep_figure("sensitivity", sensitivity_figures.output_vs_top_parameter)),
)}
