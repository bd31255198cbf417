"""Compare two checkouts' speed on a sample of a sweep's runs, as a ratio measured in one go (issue 8).

    python benchmarks/ab_sample.py BASE_CHECKOUT SWEEP.toml [--runs 30] [--repeat 3] [--rounds 2]
    python benchmarks/ab_sample.py BASE_CHECKOUT --reference 10000 [--repeat 7]   # one run of that size

Timings on a shared machine drift by several percent from minute to minute, more than most single
changes are worth.  So the two checkouts run *at the same time*, one pinned to each core
(``taskset``), on the same sample of the sweep's design rows, and swap cores every round: both
see the same host.  Each side reports, per run, the fastest of ``--repeat`` timings (process time,
spec already parsed), and the mean over the sample; the ratio of the two means is printed per
round.  BASE_CHECKOUT is any directory holding a cascadelab checkout (e.g. a ``git worktree`` of the
last release); the other side is this one.  Both must be importable with the same installed
dependencies.  On a machine without ``taskset`` or with one core the two sides run one after the
other, which only a larger --rounds can make fair.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

_WORKER = """
import sys, time, numpy as np, cascadelab
from cascadelab.spec import read_toml, load_spec
from cascadelab.sweep import plan_sweep
from cascadelab.sweep.work import applied_values
from pathlib import Path
k, reps = int(sys.argv[2]), int(sys.argv[3])
if sys.argv[1].startswith("reference:"):  # the Mesa comparison's scenario at this many positions
    sys.path.insert(0, "benchmarks")
    from reference_mesa import reference_spec
    specs = [load_spec(reference_spec(int(sys.argv[1].split(":")[1])))]
else:
    sweep = Path(sys.argv[1])
    plan = plan_sweep(read_toml(sweep), base=sweep.parent)
    rows = np.random.default_rng(0).choice(plan.n_rows, size=min(k, plan.n_rows), replace=False)
    study = plan.study
    specs = [load_spec(study.scenario, overrides={**study.mechanisms[0][1],
                                                  **dict(zip(study.names, applied_values(study, plan.x[r])))})
             for r in rows]
cascadelab.run(specs[0])  # imports and first-call costs out of the timing
best = np.full(len(specs), np.inf)
for _ in range(reps):
    for i, s in enumerate(specs):
        t0 = time.process_time()
        cascadelab.run(s)
        best[i] = min(best[i], time.process_time() - t0)
print(best.mean())
"""


def _side(checkout: Path, sweep: Path | str, runs: int, repeat: int, core: int | None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    cmd = [sys.executable, "-c", _WORKER, str(sweep), str(runs), str(repeat)]
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, cwd=str(checkout))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", type=Path, help="the other checkout (the baseline)")
    ap.add_argument("sweep", type=Path, nargs="?", help="a sweep file: its design rows are the sample")
    ap.add_argument("--reference", type=int, metavar="POSITIONS",
                    help="instead of a sweep: the scenario timed against the Mesa reference, at this size")
    ap.add_argument("--runs", type=int, default=30, help="design rows in the sample")
    ap.add_argument("--repeat", type=int, default=3, help="timings per run (the fastest is kept)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, swapping cores each time")
    args = ap.parse_args(argv)
    base, new = args.base.resolve(), HERE.parent
    if not (base / "cascadelab" / "__init__.py").exists():
        ap.error(f"{base} holds no cascadelab checkout")
    if (args.sweep is None) == (args.reference is None):
        ap.error("give a sweep file or --reference POSITIONS")
    sweep = f"reference:{args.reference}" if args.reference else args.sweep.resolve()
    name = f"the reference scenario at {args.reference:,} positions" if args.reference else \
        f"a sample of {args.runs} runs of {args.sweep.name}"
    parallel = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    print(f"base {base}  new {new}  {name}, best of {args.repeat}")
    for r in range(args.rounds):
        cores = (r % 2, 1 - r % 2) if parallel else (None, None)
        sides = [_side(base, sweep, args.runs, args.repeat, cores[0])]
        if not parallel:
            sides[0].wait()
        sides.append(_side(new, sweep, args.runs, args.repeat, cores[1]))
        t_base, t_new = (float(p.communicate()[0].split()[-1]) for p in sides)
        print(f"round {r + 1}: base {t_base * 1e3:.1f} ms  new {t_new * 1e3:.1f} ms a run  "
              f"ratio new/base {t_new / t_base:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
