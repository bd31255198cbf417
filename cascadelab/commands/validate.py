"""``cascadelab validate [--json] [--only NAME ...] [--list]``: run the validation checks.

Prints the table (check, source, expected, got, tolerance, pass); exits 1 if any check
that ran failed or raised, 0 otherwise (skipped checks, whose mechanism is not
registered yet, do not fail the run).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from cascadelab.cli import UsageError

if TYPE_CHECKING:
    from cascadelab.validation.core import CheckResult


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("validate", help="run the closed-form and historical validation checks")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--only", nargs="+", default=(), metavar="NAME",
                   help="run only checks whose name contains NAME or whose family is NAME")
    p.add_argument("--list", action="store_true", help="list the checks without running them")
    return p


def main(args: argparse.Namespace) -> int:
    from cascadelab.validation import run_checks, select
    from cascadelab.validation.report import format_table, to_json

    checks = select(args.only)
    if not checks:
        raise UsageError(f"--only {' '.join(args.only)}: no check matches")
    if args.list:
        width = max(len(c.name) for c in checks)
        for c in checks:
            needs = f"  [needs {', '.join(c.requires)}]" if c.requires else ""
            print(f"{c.name:<{width}}  {c.family:<14} {c.description}{needs}")
        return 0
    results = run_checks(checks, _show_progress if sys.stderr.isatty() and not args.json else None)
    print(to_json(results) if args.json else format_table(results))
    return 1 if any(r.failed for r in results) else 0


def _show_progress(result: CheckResult) -> None:
    print(f"  {result.status:<5} {result.name}", file=sys.stderr)
