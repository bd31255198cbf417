"""Fingerprints of a few scenarios' complete outputs, to prove an optimisation changed nothing.

    python benchmarks/check_identical.py                  # print one hash per scenario
    python benchmarks/check_identical.py --save FILE      # ... and store them
    python benchmarks/check_identical.py --compare FILE   # exit 1 if any hash differs from FILE
    python benchmarks/check_identical.py --store DIR [--runs 40]   # re-run runs of a stored sweep

A hash covers the metrics (exact float bits), per-protocol and per-asset metrics, contagion and causes, and
every row and column of the fills, sales, timeseries and cascade-graph frames (exact bits), so it
changes if any number the run produces changes in its last bit.  Run it before and after
an engine change: equal hashes mean the change is behaviour-preserving on these scenarios.

``--store DIR`` checks against a sweep an earlier engine ran (e.g. the paper's
``paper/results/full/sweeps/sensitivity``): it rebuilds the study from the store's manifest,
re-runs ``--runs`` of its runs (the slowest half by their stored wall time, which reach the
paths the sweep's inputs push hardest, the rest drawn at random) and compares every stored
output bit for bit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's engine, not an installed copy

from reference_mesa import reference_spec  # noqa: E402

SCENARIOS = HERE.parent / "experiments" / "scenarios"

import cascadelab  # noqa: E402


def _scaled_default(n: int, steps: int, **extra: Any) -> tuple[None, dict[str, Any]]:
    from steps_per_second import scaled_spec

    return scaled_spec(n, steps), extra


def scenarios() -> dict[str, tuple[Any, dict[str, Any]]]:
    """Name -> (spec, overrides): the default scenario and variants that reach the other code paths."""
    return {
        "default_10k": (None, {}),
        "default_2k_multi_round_margin": (_scaled_default(2000, 720)[0], {
            "liquidators.rounds_per_step": 3, "liquidators.strategy": "margin", "liquidators.margin": 0.01,
            "liquidators.latency_steps": 1, "liquidators.max_fills_per_step": 5}),
        "default_2k_transient_sqrt_noise": (_scaled_default(2000, 720)[0], {
            "venues.ETH.kind": "transient_impact", "venues.ETH.depth_usd": 3e7, "noise.ETH.volume_usd": 2e5,
            "arbitrageurs.capital_usd_per_step": 5e6}),
        "default_2k_topup_repay": (_scaled_default(2000, 720)[0], {
            "populations.a_active.behaviour.action": "top_up", "populations.b_passive.behaviour.kind": "reactive",
            "populations.b_passive.behaviour.action": "repay"}),
        "reference_2k": (reference_spec(2000, 1440), {}),
        "two_assets_two_protocols_2k": (two_asset_spec(), {}),
        # event paths a quiet-step shortcut must respect: English and Dutch auctions (running auctions are
        # stepped), scripted gas spikes, keeper latency, reactive top-ups, a lagged deviation oracle
        "black_thursday_english": (SCENARIOS / "black_thursday.toml", {}),
        "black_thursday_dutch_latency": (SCENARIOS / "black_thursday_dutch.toml", {
            "liquidators.latency_steps": 3}),
        "backstop_twap_noise_twap_oracle_2k": (backstop_spec(), {}),
        "contagion_sqrt": (SCENARIOS / "contagion.toml", {}),
        "eth_steth_depeg": (SCENARIOS / "eth_steth_depeg.toml", {}),
        "debt_market_inelastic": (SCENARIOS / "debt_market_inelastic.toml", {}),
        # capital-starved keepers (the slow tail of the Sobol' study): the best offer costs more than a
        # keeper holds, step after step, while keepers' capital drifts apart with their profits
        "sweep_1k_starved_keepers": (None, STARVED_KEEPERS),
        "sweep_1k_starved_keepers_3_rounds": (None, {**STARVED_KEEPERS, "liquidators.rounds_per_step": 3,
                                                     "liquidators.capital_usd": 2.5e5}),
        # liquidatable positions no keeper will take (a keeper's minimum profit): the rounds the take bound
        # skips, on a constant-product pool, on a transient sqrt venue with priced gas, and under Aave's rules
        "reference_1k_min_profit": (SCENARIOS / "reference_crash.toml", UNPROFITABLE),
        "reference_1k_min_profit_transient_gas": (SCENARIOS / "reference_crash.toml", {
            **UNPROFITABLE, "venues.ETH.kind": "transient_impact", "venues.ETH.impact": "sqrt",
            "gas.token": "ETH", "liquidators.gas_units": 300_000}),
        "sweep_1k_min_profit_aave": (None, {**STARVED_KEEPERS, "liquidators.capital_usd": 2e6,
                                            "protocols.lender_a.mechanism.close_factor": 0.5,
                                            "liquidators.min_profit_usd": 150.0}),
    }


UNPROFITABLE = {
    "protocols.lender.mechanism.bonus": 0.08, "protocols.lender.mechanism.close_factor": 0.6,
    "venues.ETH.depth_usd": 2.2e7, "venues.ETH.recovery_halflife_steps": 30.0, "liquidators.capital_usd": 3e5,
    "liquidators.min_profit_usd": 100.0}
"""A mid-study point of experiments/sweeps/sensitivity_reference_crash.toml: positions stay liquidatable for
hundreds of steps because they are not worth a keeper's $100."""


STARVED_KEEPERS = {
    "populations.a_passive.count": 400, "populations.a_active.count": 200, "populations.b_passive.count": 400,
    "protocols.lender_b.mechanism": {"kind": "fixed_bonus"}, "protocols.lender_a.mechanism.bonus": 0.062868,
    "protocols.lender_a.mechanism.close_factor": 0.995715, "assets.ETH.path.3.1": 1212.134122,
    "venues.ETH.depth_usd": 1.631209e8, "venues.ETH.recovery_halflife_steps": 21.362969,
    "liquidators.capital_usd": 5.882669e4, "protocols.lender_a.oracle.lag_steps": 9}
"""A run from the N = 1024 study of experiments/sweeps/sensitivity_fixed_bonus.toml (one of its slowest)."""


def backstop_spec() -> dict[str, Any]:
    """Liquity pool selling what it holds by twap with depositors leaving under stress, a twap oracle, noise,
    a gas spike that prices keepers out, keeper latency, reactive repaying borrowers."""
    raw, _ = _scaled_default(2000, 720)
    raw["protocols"]["lender_b"]["mechanism"] = {"kind": "backstop_pool", "sell": "twap", "sell_fraction": 0.1,
                                                 "deposit_share": 0.3, "depositors": 5, "withdraw_drop": 0.3,
                                                 "withdraw_prob": 0.02}
    raw["protocols"]["lender_a"]["oracle"] = {"kind": "twap", "window_steps": 15, "lag_steps": 1}
    raw["noise"] = {"ETH": {"volume_usd": 3e5}}
    raw["gas"] = {"path": [[0, 20.0], [200, 20.0], [260, 900.0], [320, 20.0], [720, 20.0]], "max_gwei": 1000,
                  "token": "ETH"}
    raw["liquidators"]["latency_steps"] = 2
    raw["liquidators"]["max_gas_gwei"] = 500
    raw["populations"]["b_passive"]["behaviour"] = {"kind": "reactive", "action": "repay", "trigger_health": 1.1,
                                                    "target_health": 1.4, "probability": 0.02, "latency_steps": 3}
    return raw


def two_asset_spec() -> dict[str, Any]:
    """Multi-collateral positions, two correlated assets with GBM noise, two protocols (general code paths)."""
    raw, _ = _scaled_default(1500, 720)
    raw["assets"]["BTC"] = {"process": "gbm", "price": 60_000.0, "sigma": 1.5, "mu": -20.0}
    raw["correlation"] = {"ETH": {"BTC": 0.7}}
    raw["venues"]["BTC"] = {"kind": "constant_product", "depth_usd": 2e8, "fee": 0.003, "recovery_halflife_steps": 20}
    for proto in raw["protocols"].values():
        proto["markets"]["BTC"] = {"liquidation_threshold": 0.75}
    raw["populations"]["btc"] = {"protocol": "lender_b", "count": 500, "collateral_asset": "BTC",
                                 "health": {"dist": "uniform", "low": 1.02, "high": 1.6}}
    raw["positions"] = [{"protocol": "lender_a", "name": f"multi{i}", "collateral": {"ETH": 10.0 + i, "BTC": 0.5},
                         "debt": 30_000.0 + 500 * i} for i in range(40)]
    return raw


def fingerprint(result: cascadelab.RunResult) -> str:
    """SHA-256 over the exact bits of a run's metrics, cascade matrices and frames."""
    h = hashlib.sha256()
    numbers = {"metrics": result.metrics, "per_protocol": result.per_protocol, "per_asset": result.per_asset,
               "contagion": result.contagion, "causes": result.causes}
    h.update(json.dumps(numbers, sort_keys=True, default=float.hex,
                        allow_nan=True).encode())
    for key in sorted(numbers):
        h.update(repr(_hex(numbers[key])).encode())
    for name in ("fills", "sales", "timeseries", "cascade"):
        frame: pd.DataFrame = getattr(result, name)
        h.update(name.encode())
        h.update(",".join(frame.columns).encode())
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def _hex(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _hex(v) for k, v in sorted(obj.items())}
    return float(obj).hex()


def compare_store(root: Path, runs: int, seed: int = 0) -> int:
    """Re-run ``runs`` runs of the sweep stored in ``root``; the number whose outputs differ from the stored ones."""
    import numpy as np

    from cascadelab.sweep import Store, plan_sweep
    from cascadelab.sweep.store import KEY, TEXT_COLUMNS
    from cascadelab.sweep.work import run_task

    store = Store.open(root)
    manifest = store.manifest()
    sweep = dict(manifest["sweep"])
    if manifest["scenario_path"]:
        sweep["scenario"] = manifest["scenario_path"]  # resolved when the sweep ran
    plan = plan_sweep({"sweep": sweep})
    if not np.array_equal(plan.x, store.sample()):
        raise SystemExit(f"{root}: the sweep spec no longer samples the stored design; cannot compare")
    stored = store.read_results()
    stored = stored[stored["error"].isna()]
    slowest = stored.nlargest(runs // 2, "wall_seconds")
    rest = stored.drop(slowest.index)
    picked = pd.concat([slowest, rest.sample(min(runs - len(slowest), len(rest)), random_state=seed)])
    outputs = [c for c in stored.columns if c not in {*KEY, *TEXT_COLUMNS, "wall_seconds", *plan.study.names}]
    mechanisms = plan.mechanism_names
    differ = 0
    for _, old in picked.iterrows():
        row, rep, mech = int(old["row"]), int(old["replicate"]), mechanisms.index(old["mechanism"])
        new = run_task(plan.study, row, rep, mech, plan.x[row])
        bad = [c for c in outputs if float(new[c]).hex() != float(old[c]).hex()]
        differ += bool(bad)
        print(f"row {row:>6} {old['mechanism']:<16} stored {old['wall_seconds']:6.2f} s, now "
              f"{new['wall_seconds']:6.2f} s  {'DIFFERENT: ' + ', '.join(bad[:4]) if bad else 'same'}")
    print(f"{len(picked) - differ} of {len(picked)} runs identical in all {len(outputs)} outputs")
    return differ


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="write the hashes to this JSON file")
    parser.add_argument("--compare", type=Path, help="compare with hashes saved earlier; exit 1 on any difference")
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    parser.add_argument("--store", type=Path, help="instead: re-run runs of the sweep stored in this directory")
    parser.add_argument("--runs", type=int, default=40, help="--store: how many runs to re-run")
    args = parser.parse_args()
    if args.store:
        return 1 if compare_store(args.store, args.runs) else 0
    expected = json.loads(args.compare.read_text()) if args.compare else {}
    hashes: dict[str, str] = {}
    differ = []
    for name, (spec, overrides) in scenarios().items():
        if args.only and name not in args.only:
            continue
        result = cascadelab.run(spec, overrides=overrides)
        hashes[name] = fingerprint(result)
        status = ""
        if name in expected:
            status = "same" if expected[name] == hashes[name] else "DIFFERENT"
            if status == "DIFFERENT":
                differ.append(name)
        print(f"{name:<34} {hashes[name]}  liquidations {int(result.metrics['liquidation_count']):>6}  {status}")
    if args.save:
        args.save.write_text(json.dumps(hashes, indent=2) + "\n")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
