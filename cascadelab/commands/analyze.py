"""``cascadelab analyze DIR [--json]``: sensitivity indices and the mechanism comparison of a saved sweep."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("analyze", help="sensitivity indices and mechanism comparison of a saved sweep",
                       description="Read a sweep's saved results (never re-simulating), compute the design's "
                                   "indices, delta/PAWN, seed noise and the paired mechanism comparison; write "
                                   "CSV tables and analysis.json to DIR/analysis.")
    p.add_argument("dir", type=Path, help="results directory written by `cascadelab sweep`")
    p.add_argument("--json", action="store_true", help="print the whole analysis as one JSON object")
    p.add_argument("--no-given-data", action="store_true", help="skip delta and PAWN (the slow part on big sweeps)")
    return p


def main(args: argparse.Namespace) -> int:
    from analysis.sensitivity import analyze_sweep, write_analysis
    from cascadelab.cli import UsageError
    from cascadelab.sweep import StoreError

    try:
        analysis = analyze_sweep(args.dir, given_data=not args.no_given_data)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    target = write_analysis(analysis)
    if args.json:
        json.dump(analysis.to_json_dict(), sys.stdout, default=lambda v: None if isinstance(v, float) and math.isnan(v)
                  else str(v))
        sys.stdout.write("\n")
        return 0
    print(summary(analysis))
    print(f"\ntables (CSV) and analysis.json in {target}/")
    return 0


def summary(analysis) -> str:  # noqa: ANN001 - SweepAnalysis, imported lazily
    """The top indices per output and the plain-language answer."""
    data = analysis.data
    lines = [f"{data.root}: {data.manifest['method']} design, {data.n_rows} rows x {data.replicates} replicate(s) x "
             f"{len(data.mechanisms)} mechanism(s)", ""]
    idx = analysis.tables["indices"]
    main_index = {"sobol": ("sobol", "ST"), "morris": ("morris", "mu_star"), "fast": ("fast", "ST"),
                  "latin": ("delta", "delta"), "grid": ("delta", "delta")}[data.manifest["method"]]
    noise = analysis.tables["noise"].set_index(["mechanism", "output"])
    for (mech, out), g in idx.groupby(["mechanism", "output"], sort=False) if not idx.empty else []:
        sel = g[(g["method"] == main_index[0]) & (g["index"] == main_index[1])].sort_values("value", ascending=False)
        ranked = ", ".join(f"{r.parameter} {r.value:.3g}" + (f"±{r.conf:.2g}" if math.isfinite(r.conf) else "")
                           for r in sel.itertuples())
        share = noise.loc[(mech, out), "noise_share"]
        extra = f"  [seed noise {100 * share:.0f}% of run variance]" if math.isfinite(share) else ""
        lines.append(f"{mech} / {out}: {main_index[0]} {main_index[1]}: {ranked or 'n/a'}{extra}")
    lines += ["", *analysis.answer]
    if analysis.notes:
        lines += ["", "notes:", *(f"  {n}" for n in analysis.notes)]
    return "\n".join(lines)
