"""Sweep throughput: runs per second and parallel efficiency at 1 and 2 workers on a small scenario.

    python -m benchmarks.sweep_throughput [--positions 100] [--steps 120] [--runs 200] [--dask]   (from the repo root)
    python -m benchmarks.sweep_throughput --memory    # driver peak memory against N (Ishigami, 2 processes)

The scenario is the built-in default cut to ``--positions`` borrowers and ``--steps`` steps
(a run of tens of milliseconds, where overhead would show).  One Latin-hypercube sweep of
``--runs`` runs is timed: as a plain loop of ``cascadelab.run`` (the reference), through the
sweep runner in this process (``--workers 1``), and on a pool of 2 processes (``--workers 2``;
pool start-up timed apart, since a sweep pays it once), optionally on a Dask LocalCluster of 2.
Reported as ratios measured in the same run: runner overhead = loop rate / serial rate,
parallel efficiency = rate(2) / (2 x rate(1)).  The machine's other load moves the absolute
numbers; the ratios are what to compare.

``--memory`` runs Sobol' sweeps of Ishigami's function (runs of microseconds, so the driver's
own bookkeeping is all there is) at growing N on 2 processes, each in a fresh interpreter, and
prints the driver's peak resident memory: flat in N means results are streamed, not held.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cascadelab
from cascadelab.rng import run_seed
from cascadelab.spec import load_spec, spec_to_dict
from cascadelab.sweep import Store, plan_sweep, run_sweep
from cascadelab.sweep.backends import Backend, Dask, Processes, Serial
from cascadelab.sweep.work import applied_values


def shrink(positions: int, steps: int) -> dict:
    """Sweep overrides that cut the default scenario to ``positions`` borrowers and ``steps`` steps."""
    raw = spec_to_dict(load_spec())
    pops = raw["populations"]
    base = sum(p["count"] for p in pops.values())
    out = {f"populations.{name}.count": max(1, round(p["count"] * positions / base)) for name, p in pops.items()}
    out.update({"run.steps": steps, "assets.ETH.path": [[0, 2000.0], [steps // 2, 1400.0], [steps, 1500.0]]})
    return out


def sweep_spec(positions: int, steps: int, runs: int) -> dict:
    return {"sweep": {"scenario": "default", "method": "latin", "n": runs, "outputs": ["bad_debt_usd"],
                      "overrides": shrink(positions, steps), "params": [
                          {"path": "assets.ETH.path.1.1", "bounds": [1200.0, 1700.0]},
                          {"path": "venues.ETH.depth_usd", "bounds": [1e6, 2e7], "dist": "logunif"},
                          {"path": "assets.ETH.sigma", "bounds": [0.3, 1.2]}]}}


def timed(plan, out: Path, backend: Backend) -> float:  # noqa: ANN001 - a Plan
    t0 = time.perf_counter()
    summary = run_sweep(plan, out, backend=backend, progress=False)
    dt = time.perf_counter() - t0
    assert summary.ran == plan.n_runs and summary.failed == 0, summary
    return plan.n_runs / dt


MEMORY_PROBE = """
import resource, sys, tempfile
from pathlib import Path
from cascadelab.sweep import run_sweep
n = int(sys.argv[1])
params = [{"path": f"x{i}", "bounds": [-3.14159265, 3.14159265]} for i in (1, 2, 3)]
spec = {"sweep": {"function": "cascadelab.sweep.testfns:ishigami", "method": "sobol", "n": n,
                  "calc_second_order": False, "outputs": ["y"], "params": params}}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
s = run_sweep(spec, Path(tempfile.mkdtemp()) / "out", workers=2, progress=False)
print(s.ran, before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def driver_memory(ns: tuple[int, ...] = (256, 2048, 16384)) -> None:
    """Driver peak RSS of Ishigami sweeps at growing N (one fresh interpreter each)."""
    print(f"{'Sobol N':>8}{'runs':>9}{'driver peak RSS MB':>21}{'growth during sweep MB':>25}")
    for n in ns:
        out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(n)], capture_output=True, text=True,
                             check=True).stdout.split()
        runs, before, peak = (int(v) for v in out)
        print(f"{n:>8}{runs:>9,}{peak / 1024:>21.1f}{(peak - before) / 1024:>25.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positions", type=int, default=100)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--dask", action="store_true", help="also time a Dask LocalCluster of 2 workers")
    ap.add_argument("--memory", action="store_true", help="only measure driver memory against N")
    args = ap.parse_args()
    if args.memory:
        driver_memory()
        return
    work = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    plan = plan_sweep(sweep_spec(args.positions, args.steps, args.runs))
    small = plan.study.scenario

    t0 = time.perf_counter()
    for row in range(plan.n_rows):
        overrides = dict(zip(plan.study.names, applied_values(plan.study, plan.x[row]), strict=True))
        cascadelab.run(small, seed=run_seed(plan.study.root_seed, row, 0), overrides=overrides)
    loop = plan.n_runs / (time.perf_counter() - t0)

    serial = timed(plan, work / "serial", Serial())
    t0 = time.perf_counter()
    with Processes(2) as pool:
        pool.submit(os.getpid).result()  # start the pool before timing
        startup = time.perf_counter() - t0
        two = timed(plan, work / "processes", pool)
    rows = Store.open(work / "serial").read_results().drop(columns="wall_seconds")
    same = rows.equals(Store.open(work / "processes").read_results().drop(columns="wall_seconds"))
    print(f"small scenario: {args.positions} borrowers x {args.steps} steps; {plan.n_runs} runs per sweep; "
          f"{os.cpu_count()} cores")
    print(f"{'':<28}{'runs/s':>9}{'ratio':>10}")
    print(f"{'plain loop of run()':<28}{loop:>9.1f}{1.0:>10.2f}")
    print(f"{'sweep, 1 worker (serial)':<28}{serial:>9.1f}{serial / loop:>10.2f}   runner overhead "
          f"{100 * (1 - serial / loop):.1f}%")
    print(f"{'sweep, 2 processes':<28}{two:>9.1f}{two / loop:>10.2f}   parallel efficiency "
          f"{two / (2 * serial):.2f} (pool start-up {startup:.1f} s, paid once)")
    if args.dask:
        with Dask.local(2) as cluster:
            dask_rate = timed(plan, work / "dask", cluster)
        print(f"{'sweep, Dask LocalCluster 2':<28}{dask_rate:>9.1f}{dask_rate / loop:>10.2f}   parallel efficiency "
              f"{dask_rate / (2 * serial):.2f}")
    print(f"identical rows serial vs 2 processes: {same}")


if __name__ == "__main__":
    main()
