"""One plotting theme for every figure module, and byte-stable saving.

``apply()`` sets a fixed seaborn theme (white grid, paper context, the colour-blind-safe
``colorblind`` palette); ``save(fig, stem)`` writes ``stem.png`` and ``stem.pdf`` without
timestamps, so the same data give the same bytes.  Figure modules draw with the Agg
backend and call ``apply()`` before drawing.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

PALETTE = "colorblind"
"""Categorical palette (Okabe-Ito-like, distinguishable with colour-vision deficiency)."""

SEQUENTIAL = "viridis"
"""Ordered palette (generations, magnitudes): perceptually uniform and colour-blind safe."""

DPI = 150


def apply() -> None:
    """Set the shared theme (idempotent)."""
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.15)
    plt.rcParams.update({
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "savefig.bbox": "tight",
        "axes.titleweight": "bold",
        "legend.frameon": True,
        "svg.hashsalt": "cascadelab",
        "pdf.fonttype": 42,
    })


def colors(n: int) -> list[tuple[float, float, float]]:
    """The first ``n`` categorical colours."""
    return sns.color_palette(PALETTE, n)


def ramp(n: int) -> list[tuple[float, float, float]]:
    """``n`` ordered colours from the sequential palette (dark = first)."""
    return sns.color_palette(SEQUENTIAL, n)


def usd_millions(ax: plt.Axes, axis: str = "y") -> None:
    """Label an axis's ticks as $M."""
    fmt = FuncFormatter(lambda v, _: f"${v / 1e6:,.0f}M" if float(v / 1e6).is_integer() else f"${v / 1e6:,.1f}M")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def percent(ax: plt.Axes, axis: str = "y") -> None:
    """Label an axis's ticks (fractions) as percentages."""
    fmt = FuncFormatter(lambda v, _: f"{100 * v:.0f}%")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def save(fig: plt.Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` without timestamps; closes the figure; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    fig.savefig(png, metadata={"Software": None})
    fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None})
    plt.close(fig)
    return [png, pdf]
