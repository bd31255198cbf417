"""cascadelab's speed, measured as ratios in one run (issue 8): against the obvious Mesa model, scaling, overhead.

    python benchmarks/run.py [--quick] [--out benchmarks/results.json] [--reference-budget SECONDS]
    python -m cascadelab bench [--quick] ...          (the same, from a checkout)

Five tables, each measurement in a fresh Python process (so one measurement's memory
and allocator state never leak into the next; peak memory is that process's max RSS):

1. **Against the reference.** ``reference_mesa.py`` (one Mesa agent per borrower, keepers
   scanning every borrower in Python) and cascadelab run the same scenario
   (``reference_spec``: the default scenario's crash without noise, one protocol, fixed
   bonus, instant oracle, a constant-product pool whose depth scales with the book) at
   1k, 10k and 100k positions x 1,440 steps.  Ratio = reference time / cascadelab time.
   Agreement = relative difference of liquidation count and bad debt.  If the reference's
   time, predicted from the previous size, exceeds ``--reference-budget``, it runs on fewer
   steps and its time is scaled linearly to the full horizon; the row says so, and the
   agreement then compares both models on that shorter horizon.
2. **Scaling.** The built-in default scenario with its populations scaled to 1k ... 1M
   positions: wall time, steps/s, microseconds per position-step, peak memory.
3. **Fixed per-step overhead.** The default and reference scenarios at 10 positions:
   microseconds and Python function calls (cProfile) per step.
4. **Sweep projection.** One 1,000-position, 1,440-step run of each scenario (best CPU
   time) and what 10,240 of them (a Sobol study, 8 parameters, N = 1024, no second order)
   take on 2 cores, at perfect and at 90% parallel efficiency.
5. **Replicate batch** (full mode): 32 replicates (seeds 0-31) of 1,000 positions stepped one
   by one through ``CascadeModel.run`` versus ``cascadelab.run_replicates`` (cascadelab/batch.py:
   quiet steps proved and advanced together), with a check that every replicate's metrics are
   the same bits; and one run of 32,000 positions, the cost of each step's vector work with one
   set of Python calls: what a full replicate axis could reach (``replicate_batch``).

Times are the best of ``--repeat`` runs (cascadelab: ``cascadelab.run``, spec to metrics;
the frames and the cascade graph of its RunResult are built when first read, which a
sweep never does; the reference: building its agents and running them), one run for the
reference above 10,000 positions and for cascadelab above 10,000.  Timings compare
within one run of this script only.  Results go to ``--out`` with machine info.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]  # this checkout's engine, not an installed copy

STEPS = 1440
REFERENCE_SIZES = (1_000, 10_000, 100_000)
SCALING_SIZES = (1_000, 10_000, 100_000, 1_000_000)
TINY = 10
SWEEP_POSITIONS = 1_000
SWEEP_RUNS = 10_240  # Sobol, 8 parameters, N = 1024, no second order: N * (8 + 2)
REPLICATES = 32


# ----------------------------------------------------------------------------- one measurement (worker)


def scenario_spec(scenario: str, positions: int, steps: int) -> dict[str, Any]:
    """The spec of a named benchmark scenario: ``reference`` or ``default`` (scaled)."""
    if scenario == "reference":
        from reference_mesa import reference_spec

        return reference_spec(positions, steps)
    from steps_per_second import scaled_spec

    return scaled_spec(positions, steps)


def measure(task: dict[str, Any]) -> dict[str, Any]:
    """Run one task in this process: time cascadelab or the reference, or count calls per step."""
    import cascadelab

    spec = scenario_spec(task["scenario"], task["positions"], task["steps"])
    rss_before = _peak_rss_mb()
    if task["engine"] == "reference":
        from reference_mesa import book_arrays, run_reference

        resolved = cascadelab.load_spec(spec)
        positions = book_arrays(resolved)
        seconds = float("inf")
        for _ in range(task.get("repeat", 1)):
            t0 = time.perf_counter()
            metrics = run_reference(resolved, positions)
            seconds = min(seconds, time.perf_counter() - t0)
    elif task["engine"] in ("stepping", "batch"):
        return _replicates(spec, task)
    elif task["engine"] == "calls":
        import cProfile
        import pstats

        cascadelab.run(spec)  # warm caches (imports, registry) before counting
        profile = cProfile.Profile()
        profile.enable()
        metrics = cascadelab.run(spec).metrics
        profile.disable()
        seconds = float("nan")
        stats = pstats.Stats(profile)
        return {"calls_per_step": stats.total_calls / task["steps"],
                "primitive_calls_per_step": stats.prim_calls / task["steps"], "metrics": metrics}
    else:
        cascadelab.run(spec, overrides={"run.steps": 2})  # imports and first-call costs out of the timing
        seconds = cpu = float("inf")
        for _ in range(task.get("repeat", 1)):
            t0, c0 = time.perf_counter(), time.process_time()
            metrics = cascadelab.run(spec).metrics
            seconds, cpu = min(seconds, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
        return {"seconds": seconds, "cpu_seconds": cpu, "metrics": metrics, "rss_before_mb": rss_before,
                "peak_rss_mb": _peak_rss_mb()}
    return {"seconds": seconds, "metrics": metrics, "rss_before_mb": rss_before, "peak_rss_mb": _peak_rss_mb()}


def _replicates(spec: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """R replicates (seeds 0 .. R-1) stepped one by one (``CascadeModel.run``, every step through the engine)
    or as a batch (``cascadelab.run_replicates``); CPU time and a digest of every replicate's metrics."""
    import hashlib

    import cascadelab
    from cascadelab.batch import batch_obstacles
    from cascadelab.model import CascadeModel
    from cascadelab.rng import run_seed

    resolved = cascadelab.load_spec(spec)
    seeds = list(range(task["replicates"]))
    cascadelab.run(resolved, overrides={"run.steps": 2})  # imports and first-call costs out of the timing
    c0 = time.process_time()
    if task["engine"] == "batch":
        results = cascadelab.run_replicates(resolved, seeds)
    else:
        results = [CascadeModel(resolved, run_seed(s)).run().result() for s in seeds]
    cpu = time.process_time() - c0
    digest = hashlib.sha256(json.dumps([r.metrics for r in results], default=float.hex).encode()).hexdigest()[:16]
    return {"cpu_seconds": cpu, "digest": digest, "obstacles": batch_obstacles(resolved),
            "liquidations": sum(r.metrics["liquidation_count"] for r in results)}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def in_subprocess(task: dict[str, Any]) -> dict[str, Any]:
    """``measure(task)`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, str(Path(__file__)), "--worker", json.dumps(task)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark task {task} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the three tables


def relative_difference(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale > 0 else 0.0


def against_reference(sizes: tuple[int, ...], steps: int, repeat: int, budget: float,
                      log: Any) -> list[dict[str, Any]]:
    from reference_mesa import AGREEMENT_TOLERANCE

    rows = []
    per_position_step = None  # reference seconds per position-step, from the previous size
    for n in sizes:
        fast = in_subprocess({"engine": "cascadelab", "scenario": "reference", "positions": n, "steps": steps,
                              "repeat": repeat})
        ref_steps = steps
        if per_position_step is not None and per_position_step * n * steps > budget:
            ref_steps = max(60, int(budget / (per_position_step * n)))
        ref = in_subprocess({"engine": "reference", "scenario": "reference", "positions": n, "steps": ref_steps,
                             "repeat": repeat if n <= 10_000 else 1})
        per_position_step = ref["seconds"] / (n * ref_steps)
        compare = fast if ref_steps == steps else in_subprocess(
            {"engine": "cascadelab", "scenario": "reference", "positions": n, "steps": ref_steps})
        ref_seconds = ref["seconds"] * steps / ref_steps
        diffs = {k: relative_difference(compare["metrics"][k], ref["metrics"][k]) for k in AGREEMENT_TOLERANCE}
        row = {
            "scenario": "reference crash", "positions": n, "steps": steps,
            "cascadelab_s": fast["seconds"], "reference_s": ref_seconds,
            "reference_measured_steps": ref_steps, "reference_extrapolated": ref_steps != steps,
            "ratio": ref_seconds / fast["seconds"],
            "agreement_steps": ref_steps,
            "liquidations_cascadelab": compare["metrics"]["liquidation_count"],
            "liquidations_reference": ref["metrics"]["liquidation_count"],
            "bad_debt_cascadelab": compare["metrics"]["bad_debt_usd"],
            "bad_debt_reference": ref["metrics"]["bad_debt_usd"],
            "rel_diff": diffs,
            "agree": all(diffs[k] <= tol for k, tol in AGREEMENT_TOLERANCE.items()),
            "cascadelab_peak_mb": fast["peak_rss_mb"], "reference_peak_mb": ref["peak_rss_mb"],
        }
        rows.append(row)
        log(row)
    return rows


def scaling(sizes: tuple[int, ...], steps: int, repeat: int, big_steps: int, log: Any) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        s = steps if n <= 100_000 else big_steps
        r = in_subprocess({"engine": "cascadelab", "scenario": "default", "positions": n, "steps": s,
                           "repeat": repeat if n <= 10_000 else 1})
        row = {"scenario": "default (scaled)", "positions": n, "steps": s, "seconds": r["seconds"],
               "steps_per_s": s / r["seconds"], "us_per_position_step": 1e6 * r["seconds"] / (n * s),
               "liquidations": r["metrics"]["liquidation_count"], "peak_mb": r["peak_rss_mb"],
               "baseline_mb": r["rss_before_mb"]}
        rows.append(row)
        log(row)
    return rows


def overhead(steps: int, repeat: int, log: Any) -> list[dict[str, Any]]:
    rows = []
    for scenario in ("default", "reference"):
        t = in_subprocess({"engine": "cascadelab", "scenario": scenario, "positions": TINY, "steps": steps,
                           "repeat": repeat})
        c = in_subprocess({"engine": "calls", "scenario": scenario, "positions": TINY, "steps": steps})
        row = {"scenario": scenario, "positions": TINY, "steps": steps, "us_per_step": 1e6 * t["seconds"] / steps,
               "calls_per_step": c["calls_per_step"], "primitive_calls_per_step": c["primitive_calls_per_step"]}
        rows.append(row)
        log(row)
    return rows


def sweep_projection(steps: int, repeat: int, log: Any) -> list[dict[str, Any]]:
    """One 1,000-position run per scenario, and what a 10,240-run Sobol study of it costs on 2 cores."""
    rows = []
    for scenario in ("reference", "default"):
        r = in_subprocess({"engine": "cascadelab", "scenario": scenario, "positions": SWEEP_POSITIONS,
                           "steps": steps, "repeat": repeat})
        row = {"scenario": scenario, "positions": SWEEP_POSITIONS, "steps": steps, "seconds": r["seconds"],
               "cpu_seconds": r["cpu_seconds"], "runs": SWEEP_RUNS,
               "projected_minutes_2_cores": SWEEP_RUNS * r["cpu_seconds"] / 2 / 60,
               "projected_minutes_2_cores_90pct": SWEEP_RUNS * r["cpu_seconds"] / (2 * 0.9) / 60}
        rows.append(row)
        log(row)
    return rows


def replicate_batch(steps: int, log: Any) -> list[dict[str, Any]]:
    """R replicates one by one versus ``run_replicates`` (cascadelab/batch.py), and what a full replicate axis
    could reach: one run of an R-times larger book, the cost of each step's vector work with one set of
    Python calls (before the extra work of keeping replicates apart)."""
    rows = []
    for scenario in ("reference", "default"):
        task = {"scenario": scenario, "positions": SWEEP_POSITIONS, "steps": steps, "replicates": REPLICATES}
        stepped = in_subprocess({**task, "engine": "stepping"})
        # a spec the batch cannot take runs one by one, the same code as the column before: not timed twice
        batch = in_subprocess({**task, "engine": "batch"}) if not stepped["obstacles"] else None
        big = in_subprocess({"engine": "cascadelab", "scenario": scenario,
                             "positions": REPLICATES * SWEEP_POSITIONS, "steps": steps})
        row = {"scenario": scenario, "replicates": REPLICATES, "positions": SWEEP_POSITIONS, "steps": steps,
               "one_by_one_cpu_s": stepped["cpu_seconds"], "batched": batch is not None,
               "batch_cpu_s": batch["cpu_seconds"] if batch else None,
               "speedup": stepped["cpu_seconds"] / batch["cpu_seconds"] if batch else None,
               "identical": stepped["digest"] == batch["digest"] if batch else None,
               "obstacles": stepped["obstacles"], "one_larger_run_cpu_s": big["cpu_seconds"],
               "potential_speedup": stepped["cpu_seconds"] / big["cpu_seconds"]}
        rows.append(row)
        log(row)
    return rows


# ----------------------------------------------------------------------------- reporting


def machine() -> dict[str, Any]:
    import mesa
    import numpy
    import pandas

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": numpy.__version__, "mesa": mesa.__version__,
            "pandas": pandas.__version__, "commit": commit,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _section(title: str, header: str, rows: list[str]) -> list[str]:
    """A markdown table under a title (nothing when there are no rows); the first column left-aligned."""
    if not rows:
        return []
    return ["", title, "", header, "|---" + "|---:" * (header.count("|") - 2) + "|", *rows]


def format_tables(results: dict[str, Any]) -> str:
    lines = ["## cascadelab vs the obvious Mesa model (same scenario, same rules)", "",
             "| scenario | positions | steps | cascadelab s | reference s | ratio | liquidations (cl / ref) "
             "| bad debt USD (cl / ref) | agreement |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results["reference"]:
        ref = f"{r['reference_s']:.2f}" + (f" (from {r['reference_measured_steps']} steps)"
                                          if r["reference_extrapolated"] else "")
        d = r["rel_diff"]
        agree = ("yes" if r["agree"] else "NO") + f" (count {d['liquidation_count']:.1e}, bad debt {d['bad_debt_usd']:.1e}" \
            + (f", over {r['agreement_steps']} steps)" if r["reference_extrapolated"] else ")")
        lines.append(f"| {r['scenario']} | {_n(r['positions'])} | {r['steps']} | {r['cascadelab_s']:.3f} | {ref} "
                     f"| {r['ratio']:.1f}x | {_n(r['liquidations_cascadelab'])} / {_n(r['liquidations_reference'])} "
                     f"| {_n(r['bad_debt_cascadelab'])} / {_n(r['bad_debt_reference'])} | {agree} |")
    lines += ["", "## Single run: the default scenario scaled", "",
              "| positions | steps | wall s | steps/s | us per position-step | liquidations | peak MB (baseline) |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["scaling"]:
        lines.append(f"| {_n(r['positions'])} | {r['steps']} | {r['seconds']:.2f} | {_n(r['steps_per_s'])} "
                     f"| {r['us_per_position_step']:.3f} | {_n(r['liquidations'])} "
                     f"| {_n(r['peak_mb'])} ({_n(r['baseline_mb'])}) |")
    lines += ["", f"## Fixed per-step overhead ({TINY} positions)", "",
              "| scenario | us per step | Python calls per step |", "|---|---:|---:|"]
    for r in results["overhead"]:
        lines.append(f"| {r['scenario']} | {r['us_per_step']:.0f} | {r['calls_per_step']:.0f} |")
    lines += _section(f"## Sweep projection: one {SWEEP_POSITIONS:,}-position run, {SWEEP_RUNS:,} of them on 2 cores",
                      "| scenario | steps | wall s | CPU s | 10,240 runs, 2 cores (perfect) | (at 90% efficiency) |",
                      [f"| {r['scenario']} | {r['steps']} | {r['seconds']:.3f} | {r['cpu_seconds']:.3f} "
                       f"| {r['projected_minutes_2_cores']:.1f} min | {r['projected_minutes_2_cores_90pct']:.1f} min |"
                       for r in results.get("sweep", [])])
    lines += _section(f"## Replicate batch ({REPLICATES} replicates of {SWEEP_POSITIONS:,} positions, CPU s)",
                      "| scenario | one by one | `run_replicates` | speed-up | metrics identical "
                      "| one run of R x n positions (a full replicate axis, potential) |",
                      [f"| {r['scenario']} | {r['one_by_one_cpu_s']:.2f} | " + (
                          f"{r['batch_cpu_s']:.2f} | {r['speedup']:.2f}x | {'yes' if r['identical'] else 'NO'} |"
                          if r["batched"] else "runs one by one: needs " + ", ".join(r["obstacles"]) + " | - | - |")
                       + f" {r['one_larger_run_cpu_s']:.2f} ({r['potential_speedup']:.1f}x) |"
                       for r in results.get("replicates", [])])
    m = results["machine"]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, numpy {m['numpy']}, "
              f"Mesa {m['mesa']}, commit {m['commit']}, {m['date']}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer sizes (reference at 1k and 10k, scaling up to 100k), one repeat")
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="where to write the results")
    parser.add_argument("--reference-budget", type=float, default=600.0,
                        help="seconds the reference may take at one size before it runs on fewer steps")
    parser.add_argument("--repeat", type=int, default=3, help="cascadelab: keep the fastest of this many runs")
    parser.add_argument("--big-steps", type=int, default=144, help="steps for the 1,000,000-position run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0
    repeat = 1 if args.quick else args.repeat

    def log(row: dict[str, Any]) -> None:
        print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                               if not isinstance(v, dict)), flush=True)

    t0 = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    print("against the reference ...", flush=True)
    results["reference"] = against_reference(REFERENCE_SIZES[:2] if args.quick else REFERENCE_SIZES, STEPS,
                                             repeat, args.reference_budget, log)
    print("scaling ...", flush=True)
    results["scaling"] = scaling(SCALING_SIZES[:3] if args.quick else SCALING_SIZES, STEPS, repeat,
                                 args.big_steps, log)
    print("per-step overhead ...", flush=True)
    results["overhead"] = overhead(STEPS, repeat, log)
    print("sweep projection ...", flush=True)
    results["sweep"] = sweep_projection(STEPS, repeat, log)
    if not args.quick:
        print("replicate batch ...", flush=True)
        results["replicates"] = replicate_batch(STEPS, log)
    results["total_seconds"] = time.perf_counter() - t0
    results["table"] = format_tables(results)
    print()
    print(results["table"])
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
