"""The report builds end to end from a tiny result set, and everything it cites was produced by that build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis.paper import build, referenced

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """Build paper/paper.tex with the 'test' budget into a scratch paper directory (PDF if pdflatex exists)."""
    paper_dir = tmp_path_factory.mktemp("paper")
    shutil.copy(REPO / "paper" / "paper.tex", paper_dir / "paper.tex")
    report = build(REPO, paper_dir, "test", workers=1, pdf=shutil.which("pdflatex") is not None, progress=False,
                   say=lambda _: None)
    return report, paper_dir


def test_every_figure_the_text_cites_was_drawn_in_this_build(built) -> None:
    """Each \\paperfigure / \\includegraphics names a figure whose files exist, are listed in the manifest
    of this build with their digests, and were drawn from result files that exist under the results root."""
    report, paper_dir = built
    figs, _, _ = referenced((paper_dir / "paper.tex").read_text())
    manifest = json.loads((paper_dir / "generated" / "manifest.json").read_text())
    assert figs and figs <= set(manifest["figures"])
    root = Path(manifest["results_root"])
    for name in figs:
        entry = manifest["figures"][name]
        assert f"{name}.pdf" in entry["files"] and (paper_dir / "figures" / f"{name}.pdf").is_file()
        assert entry["inputs"], name
        for rel in entry["inputs"]:
            assert (root / rel).exists(), (name, rel)
    assert manifest["budget"] == "test"
    assert set(manifest["computed"]) | set(manifest["reused"]) >= {"runs/default", "sweeps/families"}


def test_every_number_the_text_cites_comes_from_a_result(built) -> None:
    """Every \\result{key} is defined in numbers.tex and traced to a result file of this build."""
    _, paper_dir = built
    _, keys, inputs = referenced((paper_dir / "paper.tex").read_text())
    numbers = json.loads((paper_dir / "generated" / "numbers.json").read_text())
    tex = (paper_dir / "generated" / "numbers.tex").read_text()
    root = Path(json.loads((paper_dir / "generated" / "manifest.json").read_text())["results_root"])
    assert keys and keys <= set(numbers)
    for key in keys:
        assert f"\\csname result@{key}\\endcsname" in tex
        assert (root / numbers[key]["source"]).exists(), key
    for name in inputs:
        assert (paper_dir / "generated" / f"{name}.tex").is_file(), name


def test_numbers_match_the_saved_results(built) -> None:
    """Spot-check: the quoted multiplier and liquidation count are the saved run's own metrics."""
    _, paper_dir = built
    numbers = json.loads((paper_dir / "generated" / "numbers.json").read_text())
    root = Path(json.loads((paper_dir / "generated" / "manifest.json").read_text())["results_root"])
    metrics = json.loads((root / "runs" / "default" / "metrics.json").read_text())["metrics"]
    assert numbers["default.cascade_multiplier"]["value"] == metrics["cascade_multiplier"]
    assert numbers["default.liquidation_count"]["value"] == metrics["liquidation_count"]
    validation = json.loads((root / "validation.json").read_text())
    assert numbers["validation.checks"]["value"] == len(validation["checks"])


def test_a_second_build_reuses_every_result(built) -> None:
    """With unchanged specs nothing is re-simulated (only the validation checks rerun), and the figures
    drawn again from the same results are byte-identical."""
    _, paper_dir = built
    before = json.loads((paper_dir / "generated" / "manifest.json").read_text())["figures"]
    again = build(REPO, paper_dir, "test", workers=1, pdf=False, progress=False, say=lambda _: None)
    assert [c for c in again.results.computed if c != "validation.json"] == []
    assert set(again.results.reused) == {"runs/default", "runs/contagion", "runs/depeg", "runs/black_thursday",
                                         "sweeps/families", "sweeps/sensitivity"}
    after = json.loads((paper_dir / "generated" / "manifest.json").read_text())["figures"]
    assert {n: f["files"] for n, f in after.items()} == {n: f["files"] for n, f in before.items()}


def test_the_pdf_renders(built) -> None:
    if shutil.which("pdflatex") is None:
        pytest.skip("no pdflatex on this machine (.ci/run installs texlive from Debian's packages)")
    report, paper_dir = built
    assert report.pdf is not None and report.pdf.stat().st_size > 100_000
    assert report.pdf.read_bytes()[:5] == b"%PDF-"
