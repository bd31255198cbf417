"""The paired mechanism comparison: which liquidation design minimises each objective, and how surely.

Every mechanism of a sweep ran on the same (row, replicate) draws: the same parameters and
the same seed (common random numbers), so differences between mechanisms are paired.  For
each output, over the rows where every mechanism's every replicate succeeded:

- per mechanism: mean, p95, p99 and expected shortfall ES95 (the mean of the worst 5%) with
  bootstrap confidence intervals;
- per pair: how often each is lower on the same draws (and ties), the mean paired difference
  with its bootstrap CI (significant when the CI excludes 0) and a sign test;
- the Pareto front of (mean max_price_impact, mean bad_debt_usd) (and of their p95);
- a plain-language answer per objective.

The bootstrap resamples design rows (all replicates of a row together, since they share
parameters), with the same resampled rows for every mechanism so that paired statistics stay
paired; its generator comes from the sweep's root seed.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from analysis.sensitivity import SweepData

__all__ = ["STATS", "bootstrap_stats", "compare_mechanisms", "fmt_value", "pareto_front", "tail_stats"]

STATS = ("mean", "p95", "p99", "es95")
IMPACT, BAD_DEBT = "max_price_impact", "bad_debt_usd"
MAX_BOOT_CELLS = 4_000_000
"""Bootstrap resamples are processed in batches of at most this many values."""


def tail_stats(values: np.ndarray) -> np.ndarray:
    """(…, n) -> (…, 4): mean, p95, p99 and ES95 (mean of the values at or above the top 5% cut) along the last axis."""
    s = np.sort(values, axis=-1)
    n = s.shape[-1]
    k = max(1, math.ceil(0.05 * n))
    return np.stack([s.mean(axis=-1), np.quantile(s, 0.95, axis=-1), np.quantile(s, 0.99, axis=-1),
                     s[..., n - k:].mean(axis=-1)], axis=-1)


def bootstrap_stats(grids: dict[str, np.ndarray], pairs: list[tuple[str, str]], resamples: int, conf: float,
                    rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[tuple[str, str], np.ndarray]]:
    """Percentile CIs (2 x len(STATS)) of each grid's stats and of each pair's mean difference (2,).

    Each grid is (rows x replicates); rows are resampled with replacement, the same rows for every grid.
    """
    any_grid = next(iter(grids.values()))
    n, r = any_grid.shape
    batch = max(1, MAX_BOOT_CELLS // max(1, n * r))
    stats = {m: [] for m in grids}
    diffs: dict[tuple[str, str], list[np.ndarray]] = {p: [] for p in pairs}
    done = 0
    while done < resamples:
        b = min(batch, resamples - done)
        idx = rng.integers(0, n, size=(b, n))
        for m, g in grids.items():
            stats[m].append(tail_stats(g[idx].reshape(b, n * r)))
        for a, c in pairs:
            diffs[(a, c)].append((grids[a] - grids[c])[idx].reshape(b, n * r).mean(axis=1))
        done += b
    lo, hi = (1 - conf) / 2, 1 - (1 - conf) / 2
    ci = {m: np.quantile(np.concatenate(v), [lo, hi], axis=0) for m, v in stats.items()}
    dci = {p: np.quantile(np.concatenate(v), [lo, hi]) for p, v in diffs.items()}
    return ci, dci


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.Series:
    """True for points no other point beats on both x and y (lower is better) and strictly on one."""
    xv, yv = points[x].to_numpy(), points[y].to_numpy()
    dominated = np.zeros(len(points), dtype=bool)
    for i in range(len(points)):
        dominated[i] = bool(np.any((xv <= xv[i]) & (yv <= yv[i]) & ((xv < xv[i]) | (yv < yv[i]))))
    return pd.Series(~dominated, index=points.index)


def fmt_value(output: str, v: float) -> str:
    """A value as a reader wants it: dollars with a suffix, fractions as percent."""
    if not math.isfinite(v):
        return "n/a"
    if output.endswith("_usd"):
        a = abs(v)
        for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if a >= div:
                return f"${v / div:,.2f}{suf}"
        return f"${v:,.0f}"
    if output.endswith(("impact", "frac", "share")):
        return f"{100 * v:.2f}%"
    return f"{v:.4g}"


def _paired_grids(data: SweepData, output: str) -> tuple[dict[str, np.ndarray], int]:
    """(rows x replicates) grid per mechanism over rows where every mechanism's every replicate succeeded."""
    from analysis.sensitivity import run_means

    grids = {m: run_means(data, m, output)[0] for m in data.mechanisms}
    complete = np.logical_and.reduce([np.isfinite(g).all(axis=1) for g in grids.values()])
    return {m: g[complete] for m, g in grids.items()}, int((~complete).sum())


def compare_mechanisms(data: SweepData) -> dict[str, Any]:
    """Summary, pairwise and Pareto tables plus the plain-language answer (module docstring)."""
    from scipy.stats import binomtest

    mechs = data.mechanisms
    resamples = max(200, int(data.sweep["num_resamples"]))
    conf = float(data.sweep["conf_level"])
    rng = np.random.default_rng(data.seed(1000))
    summary: list[dict[str, Any]] = []
    pairwise: list[dict[str, Any]] = []
    notes: list[str] = []
    answer: list[str] = []
    pairs = list(itertools.combinations(mechs, 2))
    means: dict[str, dict[str, float]] = {}
    for out in data.outputs:
        grids, dropped = _paired_grids(data, out)
        n_rows = len(next(iter(grids.values())))
        if dropped:
            notes.append(f"comparison/{out}: {dropped} rows left out (a run failed or is missing under some mechanism)")
        if n_rows < 2:
            notes.append(f"comparison/{out}: fewer than 2 complete rows; no comparison")
            continue
        ci, dci = bootstrap_stats(grids, pairs, resamples, conf, rng)
        means[out] = {}
        for m in mechs:
            point = tail_stats(grids[m].ravel())
            means[out][m] = float(point[0])
            for j, stat in enumerate(STATS):
                summary.append({"output": out, "mechanism": m, "stat": stat, "value": float(point[j]),
                                "lo": float(ci[m][0, j]), "hi": float(ci[m][1, j]), "runs": grids[m].size})
        for a, b in pairs:
            d = (grids[a] - grids[b]).ravel()
            a_lower, b_lower = int((d < 0).sum()), int((d > 0).sum())
            untied = a_lower + b_lower
            p = binomtest(a_lower, untied, 0.5).pvalue if untied else 1.0
            lo, hi = dci[(a, b)]
            pairwise.append({"output": out, "a": a, "b": b, "runs": d.size, "a_lower": a_lower / d.size,
                             "b_lower": b_lower / d.size, "tied": 1 - untied / d.size, "mean_diff": float(d.mean()),
                             "lo": float(lo), "hi": float(hi), "significant": bool(lo > 0 or hi < 0),
                             "sign_test_p": float(p)})
    summary_df, pairwise_df = pd.DataFrame(summary), pd.DataFrame(pairwise)
    pareto_df = _pareto(summary_df, data.outputs)
    if len(mechs) < 2:
        notes.append("one design only (no mechanisms listed): nothing to compare")
    else:
        objectives = list(data.manifest.get("objectives") or [])
        for out in objectives:
            if out in means:
                answer += _answer(out, summary_df, pairwise_df, conf)
        if not pareto_df.empty:
            front = pareto_df[(pareto_df["basis"] == "mean") & pareto_df["on_front"]]["mechanism"].tolist()
            answer.append(f"Pareto front of mean {IMPACT} vs mean {BAD_DEBT} (no design is lower on both): "
                          f"{', '.join(front)}.")
    return {"comparison_summary": summary_df, "comparison_pairwise": pairwise_df, "pareto": pareto_df,
            "notes": notes, "answer": answer}


def _pareto(summary: pd.DataFrame, outputs: list[str]) -> pd.DataFrame:
    if summary.empty or IMPACT not in outputs or BAD_DEBT not in outputs:
        return pd.DataFrame()
    frames = []
    for basis in ("mean", "p95"):
        s = summary[summary["stat"] == basis]
        wide = s.pivot(index="mechanism", columns="output", values="value")
        if IMPACT not in wide or BAD_DEBT not in wide:
            continue
        lo = s.pivot(index="mechanism", columns="output", values="lo")
        hi = s.pivot(index="mechanism", columns="output", values="hi")
        pts = pd.DataFrame({"mechanism": wide.index, "basis": basis,
                            IMPACT: wide[IMPACT].to_numpy(), f"{IMPACT}_lo": lo[IMPACT].to_numpy(),
                            f"{IMPACT}_hi": hi[IMPACT].to_numpy(), BAD_DEBT: wide[BAD_DEBT].to_numpy(),
                            f"{BAD_DEBT}_lo": lo[BAD_DEBT].to_numpy(), f"{BAD_DEBT}_hi": hi[BAD_DEBT].to_numpy()})
        pts["on_front"] = pareto_front(pts, IMPACT, BAD_DEBT)
        frames.append(pts)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _pair(pairwise: pd.DataFrame, out: str, a: str, b: str) -> dict[str, Any]:
    """The pair row oriented as a - b."""
    p = pairwise[(pairwise["output"] == out) & (((pairwise["a"] == a) & (pairwise["b"] == b))
                                                | ((pairwise["a"] == b) & (pairwise["b"] == a)))].iloc[0]
    if p["a"] == a:
        return dict(p)
    return {**dict(p), "a": a, "b": b, "a_lower": p["b_lower"], "b_lower": p["a_lower"],
            "mean_diff": -p["mean_diff"], "lo": -p["hi"], "hi": -p["lo"]}


def _answer(out: str, summary: pd.DataFrame, pairwise: pd.DataFrame, conf: float) -> list[str]:
    level = f"{100 * conf:g}%"
    lines = []
    for stat, what in (("mean", "mean"), ("p99", "99th percentile")):
        s = summary[(summary["output"] == out) & (summary["stat"] == stat)].sort_values("value", kind="stable")
        best, runner = s.iloc[0], s.iloc[1]
        text = (f"{out}: lowest {what} under {best['mechanism']} ({fmt_value(out, best['value'])}, {level} CI "
                f"{fmt_value(out, best['lo'])} to {fmt_value(out, best['hi'])})")
        if stat == "mean":
            p = _pair(pairwise, out, best["mechanism"], runner["mechanism"])
            verdict = "significant" if p["significant"] else "not significant (the CI includes 0)"
            ties = [m for m in s["mechanism"].iloc[1:] if not _pair(pairwise, out, best["mechanism"], m)["significant"]]
            text += (f"; against the runner-up {runner['mechanism']} on the same draws the mean difference is "
                     f"{fmt_value(out, p['mean_diff'])} ({level} CI {fmt_value(out, p['lo'])} to "
                     f"{fmt_value(out, p['hi'])}): {verdict}; {best['mechanism']} is lower in "
                     f"{100 * p['a_lower']:.0f}% of {p['runs']} paired runs, higher in {100 * p['b_lower']:.0f}%, "
                     f"tied in {100 * p['tied']:.0f}%")
            if ties:
                text += f". Not distinguishable from the best: {', '.join(ties)}"
        lines.append(text + ".")
    return lines
