"""Steps per second of the default scenario at 1,000 / 10,000 / 100,000 positions.

    python benchmarks/steps_per_second.py [--steps 1440] [--sizes 1000 10000 100000]

Populations of the built-in default scenario are scaled to the requested total (their
mix kept); the scripted crash and everything else is unchanged.  Reports wall time,
steps per second and microseconds per position-step, and the ratio of the per-step cost
to the smallest size's (close to the size ratio means linear scaling; much less means a
fixed per-step overhead dominates).  Timings are for comparison within one run only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's engine, not an installed copy

import cascadelab  # noqa: E402
from cascadelab.spec import load_spec, spec_to_dict  # noqa: E402


def scaled_spec(total: int, steps: int) -> dict:
    raw = spec_to_dict(load_spec())
    pops = raw["populations"]
    base = sum(p["count"] for p in pops.values())
    for p in pops.values():
        p["count"] = max(1, round(p["count"] * total / base))
    raw["run"]["steps"] = steps
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1440)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=2, help="keep the fastest of this many runs")
    args = parser.parse_args()
    print(f"{'positions':>10} {'steps':>6} {'wall s':>8} {'steps/s':>9} {'us/pos-step':>12} "
          f"{'cost vs first':>14} {'liquidations':>13}")
    first = None
    for n in args.sizes:
        raw = scaled_spec(n, args.steps)
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = cascadelab.run(raw)
            best = min(best, time.perf_counter() - t0)
        first = first or best
        print(f"{n:>10,} {args.steps:>6} {best:>8.2f} {args.steps / best:>9.0f} {1e6 * best / (n * args.steps):>12.3f} "
              f"{best / first:>14.1f} {int(result.metrics['liquidation_count']):>13,}")


if __name__ == "__main__":
    main()
