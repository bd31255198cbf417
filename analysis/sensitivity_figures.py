"""Figures of a sweep, drawn from its saved results and analysis tables only (never re-simulating).

One function per figure, each taking the loaded :class:`SweepFigures` inputs and an output
directory and returning the files written (PNG + PDF), or nothing when the figure does not
apply to the design (e.g. Morris mu*-sigma for a Sobol' design):

- ``index_bars``: the design's indices per parameter with confidence intervals (Sobol' S1/ST,
  eFAST S1/ST, or delta and its S1 for Latin and grid designs), per output and mechanism;
- ``s2_heatmap``: Sobol' second-order indices;
- ``morris_mu_sigma``: Morris mu* against sigma (nonlinear / interacting inputs lie high);
- ``mechanism_comparison``: each output's distribution per mechanism, and the paired
  differences against the design with the lowest mean (bootstrap CIs);
- ``pareto_plot``: mean max price impact against mean bad debt with CIs and the Pareto front;
- ``output_vs_top_parameter``: each output against its most influential parameter.

    python -m analysis.sensitivity_figures DIR [--out FIGDIR]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import LogLocator, NullFormatter

from analysis import style  # selects the Agg backend before any figure exists
from analysis.comparison import BAD_DEBT, IMPACT, fmt_value
from analysis.sensitivity import SweepData, analyze_sweep, load_sweep_data, write_analysis

__all__ = ["SweepFigures", "draw_all", "index_bars", "load_figure_inputs", "mechanism_comparison",
           "morris_mu_sigma", "output_vs_top_parameter", "pareto_plot", "s2_heatmap"]

MAIN_INDEX = {"sobol": ("sobol", ("S1", "ST")), "fast": ("fast", ("S1", "ST")), "morris": ("morris", ("mu_star",)),
              "latin": ("delta", ("delta", "S1")), "grid": ("delta", ("delta", "S1"))}
"""The index each design is ranked by: (method, indices drawn); the last one ranks."""


@dataclass
class SweepFigures:
    """What the figures read: the saved runs and the saved analysis tables."""

    data: SweepData
    tables: dict[str, pd.DataFrame]

    @property
    def method(self) -> str:
        return str(self.data.manifest["method"])

    def table(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())


def load_figure_inputs(root: str | Path) -> SweepFigures:
    """Saved runs plus DIR/analysis/*.csv (computed from the saved runs first if missing)."""
    root = Path(root)
    target = root / "analysis"
    if not (target / "analysis.json").is_file():
        write_analysis(analyze_sweep(root))
    tables = {}
    for p in sorted(target.glob("*.csv")):
        try:
            tables[p.stem] = pd.read_csv(p)
        except pd.errors.EmptyDataError:
            tables[p.stem] = pd.DataFrame()
    return SweepFigures(load_sweep_data(root), tables)


def _label(out: str) -> str:
    return out.replace("_usd", " (USD)").replace("_", " ")


def index_bars(f: SweepFigures, out_dir: Path) -> list[Path]:
    method, names = MAIN_INDEX[f.method]
    idx = f.table("indices")
    if idx.empty:
        return []
    idx = idx[(idx["method"] == method) & idx["index"].isin(names)].dropna(subset=["value"])
    if idx.empty:
        return []
    mechs = list(dict.fromkeys(idx["mechanism"]))
    outs = list(dict.fromkeys(idx["output"]))
    fig, axes = plt.subplots(len(mechs), len(outs), figsize=(3.6 * len(outs), 0.5 + 0.35 * len(f.data.params)
                                                              * len(mechs) + 0.6 * len(mechs)),
                             squeeze=False, sharey="row", layout="constrained")
    colors = sns.color_palette(n_colors=len(names))
    params = f.data.params
    height = 0.8 / len(names)
    for i, m in enumerate(mechs):
        for j, out in enumerate(outs):
            ax = axes[i, j]
            sub = idx[(idx["mechanism"] == m) & (idx["output"] == out)]
            ypos = np.arange(len(params))
            for k, name in enumerate(names):
                s = sub[sub["index"] == name].set_index("parameter").reindex(params)
                err = s["conf"].to_numpy(dtype=float)
                ax.barh(ypos + (k - (len(names) - 1) / 2) * height, s["value"], height=height, color=colors[k],
                        xerr=np.where(np.isfinite(err), err, 0), capsize=2, label=name)
            ax.set_yticks(ypos, params)
            ax.invert_yaxis()
            ax.axvline(0, color="0.3", lw=0.8)
            ax.set_title(f"{_label(out)}" + (f"\n{m}" if len(mechs) > 1 else ""))
            if i == len(mechs) - 1:
                ax.set_xlabel(f"{method} index ({f.data.sweep['conf_level']:.0%} CI)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper")
    fig.suptitle(f"Sensitivity indices ({f.method} design, {f.data.n_rows} rows x {f.data.replicates} "
                 f"replicate(s), mean over replicates)")
    return style.save(fig, Path(out_dir) / f"{f.method}_indices")


def s2_heatmap(f: SweepFigures, out_dir: Path) -> list[Path]:
    s2 = f.table("s2")
    if f.method != "sobol" or s2.empty:
        return []
    mechs = list(dict.fromkeys(s2["mechanism"]))
    outs = list(dict.fromkeys(s2["output"]))
    params = f.data.params
    fig, axes = plt.subplots(len(mechs), len(outs), figsize=(3.8 * len(outs), 3.2 * len(mechs)), squeeze=False, layout="constrained")
    vmax = max(0.05, float(np.nanmax(np.abs(s2["value"].to_numpy(dtype=float)))))
    for i, m in enumerate(mechs):
        for j, out in enumerate(outs):
            sub = s2[(s2["mechanism"] == m) & (s2["output"] == out)]
            mat = pd.DataFrame(np.nan, index=params, columns=params)
            for r in sub.itertuples():
                mat.loc[r.parameter, r.other] = r.value
            sns.heatmap(mat, ax=axes[i, j], cmap="vlag", center=0, vmin=-vmax, vmax=vmax, annot=len(params) <= 6,
                        fmt=".2f", cbar=j == len(outs) - 1, square=True, linewidths=0.5)
            axes[i, j].set_title(_label(out) + (f"\n{m}" if len(mechs) > 1 else ""))
    fig.suptitle("Sobol' second-order indices S2 (upper triangle)")
    return style.save(fig, Path(out_dir) / "sobol_s2")


def morris_mu_sigma(f: SweepFigures, out_dir: Path) -> list[Path]:
    idx = f.table("indices")
    if f.method != "morris" or idx.empty:
        return []
    mor = idx[idx["method"] == "morris"].pivot_table(index=["mechanism", "output", "parameter"], columns="index",
                                                     values="value").reset_index()
    outs = list(dict.fromkeys(mor["output"]))
    ncols = min(len(outs), 2)  # two panels a row: four in a row are too small to read in a paper
    nrows = -(-len(outs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols + 2.2, 4.0 * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(outs):]:
        ax.set_visible(False)
    for j, out in enumerate(outs):
        ax = axes.flat[j]
        sub = mor[mor["output"] == out]
        # colour = design, marker = input: legible where 30+ annotated points would overprint each other
        sns.scatterplot(data=sub, x="mu_star", y="sigma", hue="mechanism", style="parameter", ax=ax,
                        legend=j == ncols - 1, s=45)
        if j == ncols - 1:
            sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
        lim = float(np.nanmax(sub[["mu_star", "sigma"]].to_numpy())) if len(sub) else 1.0
        ax.plot([0, lim], [0, lim], ls="--", color="0.6", lw=0.8)
        ax.xaxis.set_major_formatter(_value_ticks(out))
        ax.yaxis.set_major_formatter(_value_ticks(out))
        ax.set(title=_label(out), xlabel="mu* (mean |elementary effect|)", ylabel="sigma")
    fig.suptitle("Morris screening: influential inputs lie right, nonlinear or interacting ones high")
    return style.save(fig, Path(out_dir) / "morris_mu_sigma")


def _value_ticks(output: str) -> plt.FuncFormatter:
    """Tick labels in the output's unit ($1.5M, 40%) instead of an offset like 1e6 that collides with the label."""
    return plt.FuncFormatter(lambda v, _: fmt_value(output, v).replace(".00", ""))


def _long_results(f: SweepFigures) -> pd.DataFrame:
    res = f.data.results
    ok = res[res["error"].isna()]
    outs = [o for o in f.data.outputs if o in ok.columns]
    return ok.melt(id_vars=["row", "replicate", "mechanism"], value_vars=outs, var_name="output")


def mechanism_comparison(f: SweepFigures, out_dir: Path) -> list[Path]:
    summary, pairwise = f.table("comparison_summary"), f.table("comparison_pairwise")
    mechs = f.data.mechanisms
    if len(mechs) < 2 or summary.empty:
        return []
    long = _long_results(f)
    outs = list(dict.fromkeys(summary["output"]))
    fig, axes = plt.subplots(2, len(outs), figsize=(4.2 * len(outs), 7.5), squeeze=False, layout="constrained")
    for j, out in enumerate(outs):
        ax = axes[0, j]
        sub = long[long["output"] == out]
        box = ax.boxplot([sub.loc[sub["mechanism"] == m, "value"].to_numpy() for m in mechs], positions=range(len(mechs)),
                         tick_labels=mechs, patch_artist=True, widths=0.6, flierprops={"markersize": 1.5},
                         medianprops={"color": "black"})
        for patch, color in zip(box["boxes"], sns.color_palette(n_colors=len(mechs)), strict=True):
            patch.set_facecolor(color)
        means = summary[(summary["output"] == out) & (summary["stat"] == "mean")].set_index("mechanism").reindex(mechs)
        ax.errorbar(np.arange(len(mechs)), means["value"], yerr=[means["value"] - means["lo"], means["hi"] - means["value"]],
                    fmt="D", color="black", ms=4, capsize=3, label="mean (CI)")
        if out.endswith("_usd") and (sub["value"] >= 0).all():
            ax.set_yscale("symlog", linthresh=max(1.0, float(sub["value"].quantile(0.1)) or 1.0))
        ax.set(title=_label(out), xlabel="", ylabel=_label(out))
        ax.yaxis.set_major_formatter(_value_ticks(out))
        plt.setp(ax.get_xticklabels(), rotation=35, ha="right", rotation_mode="anchor")
        # paired differences against the design with the lowest mean
        best = means["value"].idxmin()
        ax2 = axes[1, j]
        rows = []
        for m in mechs:
            if m == best:
                continue
            p = pairwise[(pairwise["output"] == out) & (((pairwise["a"] == m) & (pairwise["b"] == best))
                                                        | ((pairwise["a"] == best) & (pairwise["b"] == m)))]
            if p.empty:
                continue
            p = p.iloc[0]
            sign = 1.0 if p["a"] == m else -1.0
            lo, hi = sorted((sign * p["lo"], sign * p["hi"]))
            rows.append((m, sign * p["mean_diff"], lo, hi, p["b_lower"] if sign > 0 else p["a_lower"]))
        if rows:
            names = [r[0] for r in rows]
            d = np.array([r[1] for r in rows])
            ax2.errorbar(d, np.arange(len(rows)), xerr=[d - np.array([r[2] for r in rows]),
                                                       np.array([r[3] for r in rows]) - d],
                         fmt="o", capsize=3, color="C0")
            ax2.set_yticks(np.arange(len(rows)), [f"{n}\n(worse in {100 * r[4]:.0f}%)" for n, r in zip(names, rows, strict=True)])
            ax2.axvline(0, color="0.3", lw=0.8)
        ax2.xaxis.set_major_formatter(_value_ticks(out))
        ax2.set(title=f"paired difference vs {best}", xlabel=f"mean difference in {_label(out)} (same draws)")
    fig.suptitle(f"Mechanisms on identical draws ({f.data.n_rows} rows x {f.data.replicates} replicate(s))")
    return style.save(fig, Path(out_dir) / "mechanism_comparison")


def pareto_plot(f: SweepFigures, out_dir: Path) -> list[Path]:
    pareto = f.table("pareto")
    if pareto.empty:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), squeeze=False, layout="constrained")
    for ax, basis in zip(axes[0], ("mean", "p95"), strict=True):
        p = pareto[pareto["basis"] == basis]
        if p.empty:
            ax.set_visible(False)
            continue
        x, y = p[IMPACT].to_numpy(), p[BAD_DEBT].to_numpy()
        ax.errorbar(x, y, xerr=[x - p[f"{IMPACT}_lo"], p[f"{IMPACT}_hi"] - x],
                    yerr=[y - p[f"{BAD_DEBT}_lo"], p[f"{BAD_DEBT}_hi"] - y], fmt="none", ecolor="0.6", capsize=2)
        front = p[p["on_front"].astype(bool)].sort_values(IMPACT)
        ax.plot(front[IMPACT], front[BAD_DEBT], "-", color="C3", lw=1.2, label="Pareto front", zorder=1)
        colors = {m: f"C{k % 10}" for k, m in enumerate(f.data.mechanisms)}
        for r in p.itertuples():
            on = bool(r.on_front)
            ax.scatter(getattr(r, IMPACT), getattr(r, BAD_DEBT), s=60, marker="o" if on else "X",
                       color=colors.get(r.mechanism, "C0"), zorder=3, edgecolor="black" if on else None)
            ax.annotate(r.mechanism, (getattr(r, IMPACT), getattr(r, BAD_DEBT)), xytext=(5, 4),
                        textcoords="offset points", fontsize=8)
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.1f}%"))
        ax.yaxis.set_major_formatter(_value_ticks(BAD_DEBT))
        ax.set(xlabel=f"{basis} max price impact", ylabel=f"{basis} bad debt", title=f"{basis} over runs (CI bars)")
        ax.legend(loc="best")
    fig.suptitle("Market impact vs bad debt: lower-left is better")
    return style.save(fig, Path(out_dir) / "pareto_front")


def output_vs_top_parameter(f: SweepFigures, out_dir: Path) -> list[Path]:
    idx = f.table("indices")
    if idx.empty:
        return []
    method, names = MAIN_INDEX[f.method]
    rank = idx[(idx["method"] == method) & (idx["index"] == names[-1])].dropna(subset=["value"])
    if rank.empty:
        rank = idx[(idx["method"] == "pawn") & (idx["index"] == "median")].dropna(subset=["value"])
    if rank.empty:
        return []
    first = f.data.mechanisms[0]
    outs = [o for o in f.data.outputs if o in f.data.results.columns]
    params = dict(zip(f.data.params, f.data.columns, strict=True))
    dists = {p["name"]: p["dist"] for p in f.data.manifest["parameters"]}
    res = f.data.results[f.data.results["error"].isna()]
    fig, axes = plt.subplots(1, len(outs), figsize=(4.2 * len(outs), 3.8), squeeze=False, layout="constrained")
    for j, out in enumerate(outs):
        r = rank[(rank["output"] == out) & (rank["mechanism"] == first)]
        ax = axes[0, j]
        if r.empty:
            ax.set_visible(False)
            continue
        top = r.sort_values("value", ascending=False).iloc[0]
        col = params[top["parameter"]]
        hue = "mechanism" if len(f.data.mechanisms) > 1 else None
        sns.scatterplot(data=res, x=col, y=out, hue=hue, ax=ax, s=10, alpha=0.5, linewidth=0,
                        legend=j == len(outs) - 1 and hue is not None)
        ax.set(title=f"{_label(out)}\nvs {top['parameter']} ({names[-1]} {top['value']:.2f})",
               xlabel=top["parameter"], ylabel=_label(out))
        if dists.get(top["parameter"]) in ("logunif", "lognorm"):
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 1-2-5 labels; every minor tick
            ax.xaxis.set_minor_formatter(NullFormatter())                  # labelled (2x10^7, 3x10^7, ...) collide
        ax.yaxis.set_major_formatter(_value_ticks(out))
        ax.xaxis.set_major_formatter(_value_ticks(str(top["parameter"])))
    fig.suptitle("Each output against its most influential parameter (every run)")
    return style.save(fig, Path(out_dir) / "output_vs_top_parameter")


FIGURES = (index_bars, s2_heatmap, morris_mu_sigma, mechanism_comparison, pareto_plot, output_vs_top_parameter)


def draw_all(root: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Every figure that applies to the sweep in ``root``; returns the files written."""
    style.apply()
    f = load_figure_inputs(root)
    target = Path(out_dir) if out_dir else Path(root) / "figures"
    paths: list[Path] = []
    for draw in FIGURES:
        paths += draw(f, target)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    for p in draw_all(args.dir, args.out):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

