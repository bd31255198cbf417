"""The numbers quoted in the report, each computed from a saved result and named by a key.

``collect(results_root)`` returns ``{key: Number}``; ``write_tex`` turns them into
``\\result{key}`` definitions for the LaTeX source and ``write_json`` keeps value, text and
source file for the build manifest.  The text of the paper only ever says ``\\result{...}``,
so every number in it is regenerated with the results.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cascadelab.spec import load_spec

MECHANISM_LABELS = {
    "fixed_bonus": "fixed bonus", "dutch_auction": "Dutch auction", "english_auction": "English auction",
    "partial": "partial liquidation", "backstop_pool": "backstop pool (holds what it absorbs)",
    "backstop_pool_selling": "backstop pool (sells over time)",
}


@dataclass(frozen=True)
class Number:
    """A quoted number: its raw value, the LaTeX text, and the result file it comes from."""

    key: str
    value: float | str
    text: str
    source: str


def tex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    out = []
    for ch in str(text):
        if ch in "&%$#_{}":
            out.append("\\" + ch)
        elif ch == "~":
            out.append("$\\sim$")  # "~0" in the text means "about 0"
        elif ch in "<>":  # the default OT1 font encoding would print these as inverted marks
            out.append("\\textless{}" if ch == "<" else "\\textgreater{}")
        elif ch == "^":
            out.append("\\textasciicircum{}")
        elif ch == "\\":
            out.append("\\textbackslash{}")
        else:
            out.append(ch)
    return "".join(out)


def usd(x: float) -> str:
    """$1.23M, $456k, $1.2B, $12 (LaTeX-escaped dollar)."""
    a = abs(x)
    if not math.isfinite(x):
        return "n/a"
    if a >= 1e9:
        s = f"{x / 1e9:.2f}B"
    elif a >= 1e6:
        s = f"{x / 1e6:.1f}M"
    elif a >= 1e3:
        s = f"{x / 1e3:.0f}k"
    else:
        s = f"{x:.0f}"
    return ("-" if s.startswith("-") else "") + "\\$" + s.lstrip("-")


def pct(x: float, digits: int = 1) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.{digits}f}\\%"


def count(x: float) -> str:
    return f"{int(round(x)):,}"


def ratio(x: float, digits: int = 2) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


class Collector:
    """Accumulates numbers with their source file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.numbers: dict[str, Number] = {}

    def add(self, key: str, value: float | str, text: str, source: str) -> None:
        if key in self.numbers:
            raise KeyError(f"number {key!r} defined twice")
        self.numbers[key] = Number(key, value, text, source)

    def json(self, rel: str) -> Any:
        return json.loads((self.root / rel).read_text())


def _run_numbers(c: Collector, name: str) -> None:
    rel = f"runs/{name}/metrics.json"
    d = c.json(rel)
    m = d["metrics"]
    spec = load_spec(c.json(f"runs/{name}/spec.json"))
    src = f"runs/{name}/metrics.json"
    positions = sum(p.count for p in spec.populations.values()) + len(spec.positions)
    hours = spec.run.steps * spec.run.dt_seconds / 3600
    c.add(f"{name}.positions", positions, count(positions), f"runs/{name}/spec.json")
    c.add(f"{name}.hours", hours, ratio(hours, 0), f"runs/{name}/spec.json")
    c.add(f"{name}.keepers", spec.liquidators.total_count, count(spec.liquidators.total_count), f"runs/{name}/spec.json")
    ts = pd.read_parquet(c.root / f"runs/{name}/timeseries.parquet")
    for a in spec.asset_names:
        f = ts[f"fundamental_{a}"]
        drop = 1 - f.min() / f.iloc[0]
        c.add(f"{name}.{a}.fundamental_drop", drop, pct(drop, 0), f"runs/{name}/timeseries.parquet")
    for key, fmt in (("liquidated_usd", usd), ("liquidated_debt_usd", usd), ("bad_debt_usd", usd),
                     ("bad_debt_frac", lambda v: pct(v, 2)), ("liquidation_count", count),
                     ("max_price_impact", pct), ("borrower_loss_usd", usd), ("liquidator_pnl_usd", usd),
                     ("induced_share", pct), ("cascade_only_share", pct), ("cascade_depth", count),
                     ("cascade_multiplier", ratio), ("liquidated_usd_without_feedback", usd),
                     ("bad_debt_usd_without_feedback", usd)):
        if key in m:
            c.add(f"{name}.{key}", float(m[key]), fmt(float(m[key])), src)
    liquidated = {p: v["liquidated_usd"] for p, v in d["per_protocol"].items()}
    total = sum(liquidated.values())
    cross = sum(v for a, row in d["contagion"].items() for b, v in row.items() if a != b)
    c.add(f"{name}.cross_protocol_usd", cross, usd(cross), src)
    c.add(f"{name}.cross_protocol_share", cross / total if total else 0.0, pct(cross / total if total else 0.0), src)
    for a, row in d["contagion"].items():
        for b, v in row.items():
            if a != b:
                share = v / liquidated[b] if liquidated[b] else 0.0
                c.add(f"{name}.contagion.{a}.{b}", v, usd(v), src)
                c.add(f"{name}.contagion.{a}.{b}.share", share, pct(share), src)
    for p, v in d["per_protocol"].items():
        c.add(f"{name}.{p}.liquidated_usd", v["liquidated_usd"], usd(v["liquidated_usd"]), src)
        c.add(f"{name}.{p}.cascade_only_share", v["cascade_only_share"], pct(v["cascade_only_share"]), src)
    lar_rank = c.root / f"runs/{name}/lar_ranking.csv"
    if lar_rank.is_file():
        rank = pd.read_csv(lar_rank)
        for kind in ("asset", "protocol"):
            top = rank[(rank["kind"] == kind) & (rank["rank"] == 1)].iloc[0]
            rel = f"runs/{name}/lar_ranking.csv"
            c.add(f"{name}.lar.top_{kind}", str(top["name"]), tex_escape(top["name"]), rel)
            c.add(f"{name}.lar.top_{kind}.static", float(top["static_share"]), pct(top["static_share"]), rel)
            c.add(f"{name}.lar.top_{kind}.cascade", float(top["cascade_share"]), pct(top["cascade_share"]), rel)
            c.add(f"{name}.lar.top_{kind}.first_drop", float(top["first_drop"]), pct(top["first_drop"], 0), rel)


def _zero_bid_numbers(c: Collector, name: str) -> None:
    """Share and value of the English auctions that cleared at or near zero (Black Thursday replay)."""
    from cascadelab.validation.historical import auction_fill_frame

    spec = load_spec(c.json(f"runs/{name}/spec.json"))
    fills = pd.read_parquet(c.root / f"runs/{name}/fills.parquet")
    ts = pd.read_parquet(c.root / f"runs/{name}/timeseries.parquet")
    asset = spec.gas.token
    frame = auction_fill_frame(fills, ts, asset, spec.run.dt_seconds)
    rel = f"runs/{name}/fills.parquet"
    share = float(frame["zero_bid"].mean()) if len(frame) else 0.0
    won = frame[frame["zero_bid"]]
    value = float((fills.loc[won.index, f"seized_{asset}"] * won["market_price"]).sum())
    c.add(f"{name}.auctions", len(frame), count(len(frame)), rel)
    c.add(f"{name}.zero_bid_share", share, pct(share, 0), rel)
    c.add(f"{name}.zero_bid_value_usd", value, usd(value), rel)


def _label(mech: str) -> str:
    return MECHANISM_LABELS.get(mech, mech.replace("_", " "))


def _families_numbers(c: Collector, name: str) -> None:
    rel = f"sweeps/{name}/analysis/analysis.json"
    a = c.json(rel)
    c.add(f"{name}.runs", a["runs"], count(a["runs"]), rel)
    c.add(f"{name}.rows", a["n_rows"], count(a["n_rows"]), rel)
    c.add(f"{name}.mechanisms", len(a["mechanisms"]), count(len(a["mechanisms"])), rel)
    failed = sum(a["errors"].values())
    c.add(f"{name}.failed", failed, count(failed), rel)
    summary = pd.DataFrame(a["tables"]["comparison_summary"])
    pairwise = pd.DataFrame(a["tables"]["comparison_pairwise"])
    for out, short in (("bad_debt_usd", "bad_debt"), ("max_price_impact", "impact")):
        fmt = usd if out.endswith("_usd") else pct
        s = summary[(summary["output"] == out) & (summary["stat"] == "mean")].sort_values("value", kind="stable")
        for _, row in s.iterrows():
            c.add(f"{name}.{row['mechanism']}.{short}", float(row["value"]), fmt(float(row["value"])), rel)
        best, runner = s.iloc[0], s.iloc[1]
        c.add(f"{name}.best.{short}", str(best["mechanism"]), _label(best["mechanism"]), rel)
        c.add(f"{name}.best.{short}.ci", f"{best['lo']}..{best['hi']}",
              f"{fmt(float(best['lo']))} to {fmt(float(best['hi']))}", rel)
        c.add(f"{name}.runner_up.{short}", str(runner["mechanism"]), _label(runner["mechanism"]), rel)
        p = pairwise[(pairwise["output"] == out) & (((pairwise["a"] == best["mechanism"]) & (pairwise["b"] == runner["mechanism"]))
                                                  | ((pairwise["b"] == best["mechanism"]) & (pairwise["a"] == runner["mechanism"])))].iloc[0]
        wins = p["a_lower"] if p["a"] == best["mechanism"] else p["b_lower"]
        c.add(f"{name}.best.{short}.verdict", bool(p["significant"]),
              "significant" if p["significant"] else "not significant", rel)
        c.add(f"{name}.best.{short}.win_rate", float(wins), pct(float(wins), 0), rel)
    pareto = pd.DataFrame(a["tables"].get("pareto", []))
    if not pareto.empty:
        front = pareto[(pareto["basis"] == "mean") & pareto["on_front"]]["mechanism"].tolist()
        c.add(f"{name}.pareto", ",".join(front), ", ".join(_label(m) for m in front), rel)


def _sensitivity_numbers(c: Collector, name: str, inert: str) -> None:
    rel = f"sweeps/{name}/analysis/analysis.json"
    a = c.json(rel)
    c.add(f"{name}.runs", a["runs"], count(a["runs"]), rel)
    c.add(f"{name}.rows", a["n_rows"], count(a["n_rows"]), rel)
    idx = pd.DataFrame(a["tables"]["indices"])
    st = idx[(idx["method"] == "sobol") & (idx["index"] == "ST")]
    for out, short in (("bad_debt_usd", "bad_debt"), ("max_price_impact", "impact"), ("liquidated_usd", "liquidated")):
        rows = st[st["output"] == out].sort_values("value", ascending=False, kind="stable")
        if rows.empty or not rows["value"].notna().any():  # the output did not vary: indices undefined
            for suffix in ("", ".st", ".conf"):
                c.add(f"{name}.top.{short}{suffix}", "undefined", "n/a" if suffix else
                      "nothing (it was the same in every run, so its indices are undefined)", rel)
            for suffix in (".st", ".conf", ".verdict"):
                c.add(f"{name}.inert.{short}{suffix}", "undefined", "n/a", rel)
            continue
        top = rows.iloc[0]
        c.add(f"{name}.top.{short}", str(top["parameter"]), tex_escape(str(top["parameter"]).replace("_", " ")), rel)
        c.add(f"{name}.top.{short}.st", float(top["value"]), ratio(float(top["value"])), rel)
        c.add(f"{name}.top.{short}.conf", float(top["conf"]), ratio(float(top["conf"])), rel)
        dead = rows[rows["parameter"] == inert]
        if len(dead):
            c.add(f"{name}.inert.{short}.st", float(dead["value"].iloc[0]), ratio(float(dead["value"].iloc[0])), rel)
            c.add(f"{name}.inert.{short}.conf", float(dead["conf"].iloc[0]), ratio(float(dead["conf"].iloc[0])), rel)
            value, conf = float(dead["value"].iloc[0]), float(dead["conf"].iloc[0])
            zero = abs(value) <= conf or abs(value) < 0.01  # its interval holds 0, or it is negligible
            c.add(f"{name}.inert.{short}.verdict", int(zero),
                  "indistinguishable from zero, as it should be" if zero else
                  "not zero although the input cannot act: the estimate is not to be trusted at this N", rel)


def _validation_numbers(c: Collector) -> None:
    rel = "validation.json"
    v = c.json(rel)
    statuses = pd.Series([ch["status"] for ch in v["checks"]])
    c.add("validation.checks", len(statuses), count(len(statuses)), rel)
    for status in ("pass", "fail", "error", "skip", "info"):
        n = int((statuses == status).sum())
        c.add(f"validation.{status}", n, count(n), rel)


def collect(root: Path) -> dict[str, Number]:
    """Every quoted number, from the results under ``root`` (paper/results/<budget>)."""
    c = Collector(root)
    for name in ("default", "contagion", "depeg", "black_thursday"):
        _run_numbers(c, name)
    _zero_bid_numbers(c, "black_thursday")
    _families_numbers(c, "families")
    _sensitivity_numbers(c, "sensitivity", inert="inert_gas_token_price")
    _validation_numbers(c)
    return c.numbers


def write_tex(numbers: dict[str, Number], path: Path) -> None:
    """``\\result{key}`` definitions: an undefined key stops LaTeX with an error naming it."""
    lines = ["% generated by analysis/numbers.py from saved results; do not edit"]
    for key in sorted(numbers):
        lines.append(f"\\expandafter\\def\\csname result@{key}\\endcsname{{{numbers[key].text}}}")
    path.write_text("\n".join(lines) + "\n")


def write_json(numbers: dict[str, Number], path: Path) -> None:
    path.write_text(json.dumps({k: asdict(n) for k, n in sorted(numbers.items())}, indent=1, default=str))
