"""``cascadelab run [SPEC] [--set PATH=VALUE ...] [--seed N] [--out DIR] [--json] [--counterfactual]``: one scenario."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cascadelab
from cascadelab.record import RunResult, _json_default
from cascadelab.spec import DEFAULT_SPEC_PATH, load_spec, parse_overrides


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("run", help="run one scenario and print its summary",
                       description="Run one scenario (default: the built-in ETH-crash scenario).")
    p.add_argument("spec", nargs="?", default=None, help=f"scenario TOML (default: {DEFAULT_SPEC_PATH.name})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a spec value by dotted path, e.g. protocols.lender_a.mechanism.bonus=0.08")
    p.add_argument("--seed", type=int, default=None, help="root seed (default: run.seed of the spec)")
    p.add_argument("--out", type=Path, default=None, help="write timeseries, fills, metrics and resolved spec here")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    p.add_argument("--counterfactual", action="store_true",
                   help="also run without price feedback (same draws) and report cascade_multiplier")
    return p


def main(args: argparse.Namespace) -> int:
    from cascadelab.cli import UsageError

    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed: {args.seed} is negative; a seed is an integer >= 0")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out: {args.out} exists and is not a directory")
    spec = load_spec(args.spec, parse_overrides(args.overrides))
    result = cascadelab.run(spec, seed=args.seed, counterfactual=args.counterfactual)
    if args.out is not None:
        result.save(args.out)
    if args.json:
        json.dump(result.to_json_dict(), sys.stdout, default=_json_default)
        sys.stdout.write("\n")
    else:
        print(summary(result, args.spec or DEFAULT_SPEC_PATH))
        if args.out is not None:
            print(f"\nwrote {args.out}/ (timeseries, fills, sales, cascade as Parquet; metrics.json; spec.json)")
    return 0


METRIC_LABELS = {
    "bad_debt_usd": ("bad debt", "usd"),
    "bad_debt_frac": ("bad debt / initial debt", "pct"),
    "liquidated_usd": ("collateral liquidated", "usd"),
    "liquidated_debt_usd": ("debt repaid by liquidations", "usd"),
    "liquidation_count": ("liquidations", "int"),
    "max_price_impact": ("max price impact (1 - P/F)", "pct"),
    "borrower_loss_usd": ("borrower loss beyond debt", "usd"),
    "liquidator_pnl_usd": ("liquidator PnL", "usd"),
    "induced_liquidated_usd": ("induced by the cascade", "usd"),
    "induced_share": ("induced share", "pct"),
    "cascade_depth": ("cascade depth (generations)", "int"),
    "cascade_only_liquidated_usd": ("never liquidatable at the fundamental", "usd"),
    "cascade_only_share": ("never liquidatable share", "pct"),
    "liquidated_usd_without_feedback": ("liquidated without feedback", "usd"),
    "bad_debt_usd_without_feedback": ("bad debt without feedback", "usd"),
    "cascade_multiplier": ("cascade multiplier (x)", "ratio"),
}


def fmt(value: float, unit: str) -> str:
    if unit == "usd":
        return f"${value:,.0f}"
    if unit == "pct":
        return f"{100 * value:.2f}%"
    if unit == "ratio":
        return f"{value:.3f}"
    return f"{value:,.0f}"


def summary(result: RunResult, source: object) -> str:
    """A readable account of one run: the setting, the price path, the liquidations, the damage."""
    spec = result.spec
    ts = result.timeseries
    lines = [f"cascadelab run: {Path(str(source)).name}  seed {spec.run.seed}  "
             f"{spec.run.steps} steps x {spec.run.dt_seconds:g} s  "
             f"{sum(p.count for p in spec.populations.values()) + len(spec.positions):,} positions  "
             f"{len(spec.protocols)} protocol(s)  {spec.liquidators.total_count} keepers", ""]
    lines.append("prices (USD)            start        min fundamental   min market   end market")
    for a in spec.asset_names:
        f, m = ts[f"fundamental_{a}"], ts[f"market_{a}"]
        lines.append(f"  {a:<20}{f.iloc[0]:>10,.2f}   {f.min():>14,.2f}   {m.min():>10,.2f}   {m.iloc[-1]:>10,.2f}")
    lines.append("")
    width = max(len(v[0]) for v in METRIC_LABELS.values())
    lines.append("run metrics")
    for key, value in result.metrics.items():
        label, unit = METRIC_LABELS.get(key, (key, "num"))
        lines.append(f"  {label:<{width}}  {fmt(value, unit):>18}")
    lines.append("")
    names = list(result.per_protocol)
    keys = ["liquidated_usd", "liquidation_count", "bad_debt_usd", "bad_debt_frac", "induced_share",
            "cascade_depth", "cascade_only_share"]
    lines.append("per protocol".ljust(width + 4) + "".join(f"{n:>18}" for n in names))
    for key in keys:
        label, unit = METRIC_LABELS[key]
        lines.append(f"  {label:<{width}}  " + "".join(f"{fmt(result.per_protocol[n][key], unit):>18}" for n in names))
    if result.contagion:
        lines += ["", "contagion: USD liquidated in a protocol (columns) caused by liquidation sales of (rows)",
                  " " * (width + 4) + "".join(f"{n:>18}" for n in names)]
        for src, row in result.causes.items():
            if src.startswith("liq:") or any(row.values()):
                lines.append(f"  {src:<{width}}  " + "".join(f"{fmt(row[n], 'usd'):>18}" for n in names))
    if result.counterfactual and "cascade_multiplier" not in result.metrics:
        lines.append("\ncascade multiplier: undefined (nothing was liquidated without feedback)")
    liq = result.fills[result.fills["kind"] == "liquidation"]
    if len(liq):
        per_step = liq.groupby("step")["seized_usd"].sum()
        peak = int(per_step.idxmax())
        dt = spec.run.dt_seconds
        lines += ["", f"first liquidation at step {int(liq['step'].min())} "
                      f"({int(liq['step'].min()) * dt / 3600:.1f} h); busiest step {peak} "
                      f"({peak * dt / 3600:.1f} h) with ${per_step.max():,.0f} seized"]
    return "\n".join(lines)
