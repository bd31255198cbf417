"""``cascadelab figures DIR [--out FIGDIR]``: the sweep's figures, drawn from its saved results only."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("figures", help="draw a saved sweep's figures (PNG + PDF)",
                       description="Draw the sensitivity and mechanism-comparison figures of a sweep from its "
                                   "saved results (running `analyze` first if DIR/analysis is missing).")
    p.add_argument("dir", type=Path, help="results directory written by `cascadelab sweep`")
    p.add_argument("--out", type=Path, default=None, help="where to write the figures (default: DIR/figures)")
    return p


def main(args: argparse.Namespace) -> int:
    from analysis.sensitivity_figures import draw_all
    from cascadelab.cli import UsageError
    from cascadelab.sweep import StoreError

    try:
        paths = draw_all(args.dir, args.out)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    for p in paths:
        print(p)
    return 0
