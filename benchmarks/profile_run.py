"""Profile one run: where the time goes (the numbers behind benchmarks/PROFILE.md).

    python benchmarks/profile_run.py [--scenario default|reference] [--positions 10000] [--steps 1440]
                                     [--tool pyinstrument|cprofile] [--quiet-steps]

``pyinstrument`` prints the call tree (wall time, sampled); ``cprofile`` the functions by
own time and the Python calls per step.  ``--quiet-steps`` times every step and splits the
total into steps with no liquidatable position and the rest (the fixed per-step cost
versus the cost of liquidating).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's engine, not an installed copy

import numpy as np  # noqa: E402
from run import scenario_spec  # noqa: E402

import cascadelab  # noqa: E402


def split_quiet_steps(spec: cascadelab.Spec) -> str:
    """Per-step process time, split into quiet steps (nobody liquidatable) and busy steps."""
    from cascadelab.model import CascadeModel
    from cascadelab.rng import run_seed

    model = CascadeModel(spec, run_seed(spec.run.seed))
    times = []
    while model.t < model.n_steps:
        t0 = time.process_time()
        model.step()
        times.append(time.process_time() - t0)
    t0 = time.process_time()
    model.result()
    result_s = time.process_time() - t0
    times_a = np.array(times)
    quiet = model.recorder.unhealthy[1:].sum(axis=1) == 0
    return (f"steps {times_a.sum():.3f} s + result {result_s:.3f} s; {quiet.sum()} quiet steps: "
            f"{times_a[quiet].sum():.3f} s ({1e6 * times_a[quiet].mean() if quiet.any() else 0:.0f} us each); "
            f"{(~quiet).sum()} steps with liquidatable positions: {times_a[~quiet].sum():.3f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("default", "reference"), default="default")
    parser.add_argument("--positions", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1440)
    parser.add_argument("--tool", choices=("pyinstrument", "cprofile"), default="pyinstrument")
    parser.add_argument("--quiet-steps", action="store_true", help="split step time into quiet and busy steps")
    parser.add_argument("--limit", type=int, default=30, help="cprofile: functions to list")
    args = parser.parse_args()
    spec = cascadelab.load_spec(scenario_spec(args.scenario, args.positions, args.steps))
    cascadelab.run(spec, overrides={"run.steps": 2})  # imports and first-call costs out of the profile
    if args.quiet_steps:
        print(split_quiet_steps(spec))
        return 0
    if args.tool == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        cascadelab.run(spec)
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False))
    else:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.enable()
        cascadelab.run(spec)
        profile.disable()
        stats = pstats.Stats(profile)
        print(f"Python calls per step: {stats.total_calls / args.steps:.0f}")
        stats.sort_stats("tottime").print_stats(args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
