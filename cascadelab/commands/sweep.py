"""``cascadelab sweep SPEC --out DIR [--workers N] [--scheduler tcp://HOST:PORT] [--resume]``: a sensitivity study."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("sweep", help="run a sensitivity sweep (SALib design x mechanisms x replicates)",
                       description="Sample the sweep spec's design, run every (row, replicate, mechanism) and "
                                   "stream the results to DIR as Parquet, with a manifest.")
    p.add_argument("spec", type=Path, help="sweep spec TOML ([sweep] table; see experiments/sweeps/)")
    p.add_argument("--out", type=Path, default=None, help="results directory (new, or the one to --resume)")
    p.add_argument("--workers", type=int, default=1,
                   help="local worker processes (1: run in this process); with --scheduler local: Dask workers")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run on an existing Dask cluster ('local': start a Dask LocalCluster of --workers)")
    p.add_argument("--resume", action="store_true", help="finish the sweep in --out, skipping finished runs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--check", action="store_true", help="validate the spec against its scenario and stop")
    return p


def main(args: argparse.Namespace) -> int:
    from cascadelab.cli import UsageError
    from cascadelab.sweep import StoreError, plan_sweep, run_sweep

    if args.workers < 1:
        raise UsageError(f"--workers: {args.workers}; need at least 1")
    if args.out is None and not args.check:
        raise UsageError("--out DIR is required (where the results go)")
    plan = plan_sweep(args.spec)
    if args.check:
        print(f"{args.spec}: ok; {plan.config.method} design with {plan.n_rows} rows x {plan.config.replicates} "
              f"replicate(s) x {len(plan.mechanism_names)} mechanism(s) = {plan.n_runs} runs")
        return 0
    try:
        summary = run_sweep(plan, args.out, workers=args.workers, scheduler=args.scheduler, resume=args.resume,
                            progress=not args.no_progress)
    except KeyboardInterrupt:
        import sys

        print(f"sweep: stopped; finished runs are saved in {args.out}/; rerun with --resume to finish",
              file=sys.stderr)
        raise
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        if args.scheduler:
            raise UsageError(f"--scheduler {args.scheduler}: cannot connect ({exc})") from None
        raise
    print(f"sweep: {summary.ran} runs in {summary.seconds:.1f} s ({summary.rate:.1f} runs/s, {summary.backend}, "
          f"{summary.workers} worker(s)); {summary.skipped} already done; {summary.failed} failed; "
          f"results in {summary.out}/")
    return 0
