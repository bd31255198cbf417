"""Time a whole Sobol' study, as a researcher would run it (issue 8: 10,240 runs in < 15 min on 2 cores).

    python benchmarks/sobol_study.py SWEEP.toml [--n 1024] [--workers 2] [--out benchmarks/sobol_study.json]

Runs the sweep file's study at ``--n`` base samples through the sweep runner on ``--workers``
local processes (results streamed to a temporary store, deleted afterwards) and reports the
wall time, runs per second, the distribution of single-run times (the sweep's own per-run
``wall_seconds``) and how busy the pool was: the sum of the runs' wall times divided by
(workers x elapsed), i.e. the share of the workers' time spent inside runs rather than
waiting for the driver.  (Parallel efficiency proper, rate at 2 workers / twice the rate at 1,
is what benchmarks/sweep_throughput.py measures.)  The entry for the sweep file and N is replaced in
``--out`` (one JSON object keyed by "<sweep file> n=<N>"), with the machine it ran on; ``--keep DIR``
keeps the study's results (to compare them with another engine's, run for run).

The two studies quoted in the README:

    python benchmarks/sobol_study.py experiments/sweeps/sensitivity_reference_crash.toml   # lean scenario
    python benchmarks/sobol_study.py experiments/sweeps/sensitivity_fixed_bonus.toml       # default scenario
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's engine, not an installed copy

import numpy as np  # noqa: E402
from run import machine  # noqa: E402

from cascadelab.schema import SpecError  # noqa: E402
from cascadelab.spec import read_toml  # noqa: E402
from cascadelab.sweep import Store, StoreError, plan_sweep, run_sweep  # noqa: E402


def time_study(sweep: Path, n: int, workers: int, progress: bool = True, keep: Path | None = None) -> dict[str, Any]:
    """Run ``sweep`` at N = ``n`` on ``workers`` processes; timings and per-run statistics."""
    raw = read_toml(sweep)
    if not isinstance(raw.get("sweep"), dict):
        raise SpecError(str(sweep), "no [sweep] table: not a sweep spec (see experiments/sweeps/)")
    raw["sweep"]["n"] = n
    plan = plan_sweep(raw, base=sweep.parent)
    out = keep if keep is not None else Path(tempfile.mkdtemp(prefix="sobol_study_")) / "study"
    try:
        t0 = time.perf_counter()
        summary = run_sweep(plan, out, workers=workers, progress=progress)
        elapsed = time.perf_counter() - t0
        runs = Store.open(out).read_results()
    finally:
        if keep is None:
            shutil.rmtree(out.parent, ignore_errors=True)
    wall = runs["wall_seconds"].to_numpy(dtype=float)
    q = np.quantile(wall, [0.5, 0.9, 0.99])
    return {
        "sweep": str(sweep), "method": plan.config.method, "n": n, "params": len(plan.config.params),
        "runs": summary.ran, "failed": summary.failed, "workers": workers,
        "elapsed_minutes": elapsed / 60.0, "runs_per_second": summary.ran / elapsed,
        "run_seconds": {"mean": float(wall.mean()), "median": float(q[0]), "p90": float(q[1]),
                        "p99": float(q[2]), "max": float(wall.max()), "sum": float(wall.sum())},
        "busy_fraction": float(wall.sum() / (workers * elapsed)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path, help="sweep spec TOML (experiments/sweeps/...)")
    ap.add_argument("--n", type=int, default=1024, help="base samples (Sobol': runs = n x (params + 2))")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "sobol_study.json")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--keep", type=Path, help="keep the study's results in this (new) directory")
    args = ap.parse_args(argv)
    try:
        row = time_study(args.sweep, args.n, args.workers, progress=not args.no_progress, keep=args.keep)
    except (SpecError, StoreError) as exc:
        ap.error(str(exc))
    row["machine"] = machine()
    r = row["run_seconds"]
    print(f"{row['sweep']}: {row['runs']:,} runs ({row['failed']} failed), N = {row['n']}, {row['params']} inputs, "
          f"{row['workers']} workers: {row['elapsed_minutes']:.1f} min, {row['runs_per_second']:.2f} runs/s; "
          f"one run median {r['median']:.3f} s, mean {r['mean']:.3f} s, p99 {r['p99']:.2f} s, max {r['max']:.2f} s; "
          f"workers busy {row['busy_fraction']:.0%} of the time")
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[f"{Path(row['sweep']).as_posix()} n={row['n']}"] = row  # a trial at small N keeps the full one
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
