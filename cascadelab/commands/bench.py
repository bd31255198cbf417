"""``cascadelab bench [--quick] [--out FILE] [--reference-budget S]``: the speed benchmarks of benchmarks/run.py.

The benchmark code (the reference Mesa model, the harness) lives in the checkout's
benchmarks/ folder, not in the installed package, so this command works from a checkout
(``pip install -e .``) and says so otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="time cascadelab against the obvious Mesa model; scaling; per-step overhead",
                       description="Run benchmarks/run.py: a table of cascadelab vs the reference Mesa model, "
                                   "single-run scaling and per-step overhead, written to results.json.")
    p.add_argument("--quick", action="store_true", help="fewer sizes (about a minute)")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default: benchmarks/results.json)")
    p.add_argument("--reference-budget", type=float, default=None,
                   help="seconds the reference may take at one size before it runs on fewer steps")
    return p


def benchmark_script() -> Path:
    """benchmarks/run.py of the checkout this package was installed from."""
    import cascadelab

    return Path(cascadelab.__file__).resolve().parents[1] / "benchmarks" / "run.py"


def main(args: argparse.Namespace) -> int:
    from cascadelab.cli import UsageError

    script = benchmark_script()
    if not script.is_file():
        raise UsageError(f"{script} not found: benchmarks/ ships with the source checkout, not the installed "
                         "package; run from a checkout (pip install -e .)")
    spec = importlib.util.spec_from_file_location("cascadelab_benchmarks_run", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    argv = ["--quick"] if args.quick else []
    if args.out is not None:
        argv += ["--out", str(args.out)]
    if args.reference_budget is not None:
        argv += ["--reference-budget", str(args.reference_budget)]
    return int(module.main(argv))
