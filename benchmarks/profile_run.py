"""Profile one run: where the time goes (the numbers behind benchmarks/PROFILE.md).

    python benchmarks/profile_run.py [--scenario default|reference] [--positions 10000] [--steps 1440]
                                     [--tool pyinstrument|cprofile] [--quiet-steps [--sweep SWEEP.toml]]
    python benchmarks/profile_run.py --slow-runs --sweep SWEEP.toml [--rows 60]

``pyinstrument`` prints the call tree (wall time, sampled); ``cprofile`` the functions by
own time and the Python calls per step.  ``--quiet-steps`` times every step and splits the
total into steps with no liquidatable position, steps with liquidatable positions but no
fill (stuck) and steps with fills (the fixed per-step cost versus the cost of liquidating);
with ``--sweep SWEEP.toml [--rows 20]`` over a sample of the sweep's design rows.
``--slow-runs`` times each sampled row of ``--sweep`` and says what its time goes with: the
Spearman correlation of run time with each input and with the number of rounds in which the
first keeper evaluated every offer and took nothing because the best-ranked clip cost more
than its free capital (PROFILE.md section 20).
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


def split_quiet_steps(specs: list[cascadelab.Spec]) -> str:
    """Per-step process time over the runs of ``specs``, split into quiet steps (nobody liquidatable),
    stuck steps (positions liquidatable, nothing filled) and steps with fills; and the run-end results."""
    from cascadelab.model import CascadeModel
    from cascadelab.rng import run_seed

    kinds = ("quiet", "stuck", "with fills")
    seconds, counts, result_s = dict.fromkeys(kinds, 0.0), dict.fromkeys(kinds, 0), 0.0
    for spec in specs:
        model = CascadeModel(spec, run_seed(spec.run.seed))  # stepped: every step through CascadeModel.step
        while model.t < model.n_steps:
            fills, t0 = model.recorder.n_fills, time.process_time()
            model.step()
            kind = ("with fills" if model.recorder.n_fills > fills
                    else "stuck" if model._unhealthy_counts is not None else "quiet")
            seconds[kind] += time.process_time() - t0
            counts[kind] += 1
        t0 = time.process_time()
        model.result()
        result_s += time.process_time() - t0
    parts = [f"{counts[k]} {k} steps {seconds[k]:.3f} s ({1e6 * seconds[k] / max(counts[k], 1):.0f} us each)"
             for k in kinds]
    return f"{len(specs)} run(s): " + "; ".join(parts) + f"; results {result_s:.3f} s"


def sweep_rows(sweep: Path, rows: int) -> list[cascadelab.Spec]:
    """The specs of ``rows`` design rows of a sweep, drawn with a fixed seed."""
    return design_rows(sweep, rows)[2]


def design_rows(sweep: Path, rows: int) -> tuple[list[str], list[list[float]], list[cascadelab.Spec]]:
    """Input names, input values and specs of ``rows`` design rows of a sweep, drawn with a fixed seed."""
    from cascadelab.spec import read_toml
    from cascadelab.sweep import plan_sweep
    from cascadelab.sweep.work import applied_values

    plan = plan_sweep(read_toml(sweep), base=sweep.parent)
    study = plan.study
    picked = np.random.default_rng(0).choice(plan.n_rows, size=min(rows, plan.n_rows), replace=False)
    values = [applied_values(study, plan.x[r]) for r in picked]
    specs = [cascadelab.load_spec(study.scenario, overrides={
        **study.mechanisms[0][1], **dict(zip(study.names, v, strict=True))}) for v in values]
    return list(study.names), values, specs


def slow_runs(sweep: Path, rows: int) -> str:
    """Per sampled design row: process time and the rounds in which a first keeper evaluated every offer and
    took nothing for want of capital; the Spearman correlation of run time with those and with each input."""
    from scipy.stats import spearmanr

    from agents.liquidators import Liquidator

    names, values, specs = design_rows(sweep, rows)
    stopped = [0]
    real = Liquidator.bid

    def counting(self: Liquidator, protocol: int, offers, remaining, t: int, ranked=None):  # type: ignore[no-untyped-def]
        out = real(self, protocol, offers, remaining, t, ranked)
        if ranked is None and out[0].size == 0 and self.needs_capital is not None:
            stopped[0] += 1
        return out

    Liquidator.bid = counting  # type: ignore[method-assign]
    try:
        seconds, counts = [], []
        for spec in specs:
            stopped[0] = 0
            t0 = time.process_time()
            cascadelab.run(spec)
            seconds.append(time.process_time() - t0)
            counts.append(stopped[0])
    finally:
        Liquidator.bid = real  # type: ignore[method-assign]
    def rank_correlation(other: list[float]) -> str:
        if len(set(other)) < 2 or len(set(seconds)) < 2:
            return "undefined (constant)"
        return f"{spearmanr(seconds, other)[0]:+.2f}"

    secs = np.array(seconds)
    lines = [f"{len(specs)} runs: median {np.median(secs):.3f} s, mean {secs.mean():.3f} s, max {secs.max():.3f} s; "
             f"capital-stopped first-keeper rounds a run: median {np.median(counts):.0f}, max {max(counts)}",
             f"  Spearman correlation of run time with them: {rank_correlation(counts)}"]
    for i, name in enumerate(names):
        lines.append(f"  with {name}: {rank_correlation([v[i] for v in values])}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("default", "reference"), default="default")
    parser.add_argument("--positions", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1440)
    parser.add_argument("--tool", choices=("pyinstrument", "cprofile"), default="pyinstrument")
    parser.add_argument("--quiet-steps", action="store_true",
                        help="split step time into quiet, stuck (liquidatable, nothing filled) and filling steps")
    parser.add_argument("--sweep", type=Path, help="--quiet-steps over design rows of this sweep instead")
    parser.add_argument("--slow-runs", action="store_true",
                        help="with --sweep: what the time of its runs goes with (see the module docstring)")
    parser.add_argument("--rows", type=int, default=20, help="--sweep: how many design rows")
    parser.add_argument("--limit", type=int, default=30, help="cprofile: functions to list")
    args = parser.parse_args()
    spec = cascadelab.load_spec(scenario_spec(args.scenario, args.positions, args.steps))
    cascadelab.run(spec, overrides={"run.steps": 2})  # imports and first-call costs out of the profile
    if args.slow_runs:
        if args.sweep is None:
            parser.error("--slow-runs needs --sweep SWEEP.toml")
        print(slow_runs(args.sweep, args.rows))
        return 0
    if args.quiet_steps:
        print(split_quiet_steps(sweep_rows(args.sweep, args.rows) if args.sweep else [spec]))
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
