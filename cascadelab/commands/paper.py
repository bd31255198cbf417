"""``cascadelab paper [--quick] [--rerun] [--workers N] [--no-pdf]``: rebuild the report in paper/.

Runs (or reuses, when their results exist and their spec has not changed) the experiments of
experiments/paper.toml, draws every figure and table from the saved results, writes the numbers
quoted in the text, and renders paper/paper.pdf with pdflatex.  Needs a source checkout (the
experiments and the LaTeX source are not installed with the package).
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("paper", help="rebuild the report in paper/ from saved results",
                       description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--quick", action="store_true", help="small budgets that finish in a few minutes on 2 cores")
    p.add_argument("--budget", choices=("full", "quick", "test"), default=None,
                   help="budget by name (--quick = --budget quick; 'test' is the tiny one the tests use)")
    p.add_argument("--rerun", action="store_true", help="recompute every result even if it could be reused")
    p.add_argument("--workers", type=int, default=2, help="processes for the sweeps (default 2)")
    p.add_argument("--no-pdf", action="store_true", help="stop before pdflatex (figures, numbers, tables only)")
    p.add_argument("--paper-dir", type=Path, default=None, help="where paper.tex is and the build goes (default: paper/)")
    return p


def main(args: argparse.Namespace) -> int:
    from analysis.paper import PaperError, build
    from cascadelab.cli import UsageError

    if not (REPO / "experiments" / "paper.toml").is_file():
        raise UsageError(f"no experiments/paper.toml under {REPO}: `cascadelab paper` runs from a source checkout")
    if args.workers < 1:
        raise UsageError(f"--workers: {args.workers} must be >= 1")
    budget = args.budget or ("quick" if args.quick else "full")
    paper_dir = args.paper_dir or REPO / "paper"
    try:
        report = build(REPO, paper_dir, budget, rerun=args.rerun, workers=args.workers, pdf=not args.no_pdf)
    except PaperError as exc:
        raise UsageError(str(exc)) from None
    r = report.results
    print(f"\nbudget {budget}: computed {', '.join(r.computed) or 'nothing'}; reused {', '.join(r.reused) or 'nothing'}")
    print(f"{len(report.figures)} figures, {report.numbers} numbers, tables in {paper_dir / 'generated'}")
    if report.pdf is not None:
        print(f"wrote {report.pdf} in {report.seconds:.0f} s")
    return 0
