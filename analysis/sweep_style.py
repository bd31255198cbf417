"""The shared look of the sweep figures and how they are saved (PNG for screens, PDF for the paper).

One seaborn theme for every figure; PDFs carry no creation date so that regenerating a figure
from the same results gives the same file.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first
import seaborn as sns  # noqa: E402

__all__ = ["PALETTE", "apply_style", "save"]

PALETTE = "colorblind"


def apply_style() -> None:
    """Seaborn's paper context on a white grid, colour-blind safe palette."""
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 100, "savefig.bbox": "tight", "axes.titlesize": "medium"})


def save(fig: plt.Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``name.png`` (150 dpi) and ``name.pdf`` (no creation date) into ``out_dir``; close the figure."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"CreationDate": None})
    plt.close(fig)
    return paths
