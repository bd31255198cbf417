"""Property tests over every registered mechanism: the conformance suite of mechanisms/checks.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascadelab.book import PositionBook
from mechanisms.checks import empty_book_fills, exercise
from mechanisms.registry import REGISTRY, make, parse_config


@st.composite
def books(draw: st.DrawFn) -> tuple[PositionBook, list[np.ndarray]]:
    """A random single-protocol book and a falling oracle price path (one row per step, USD last)."""
    n = draw(st.integers(1, 12))
    n_assets = draw(st.integers(1, 2))
    coll = np.array(draw(st.lists(st.lists(st.floats(0.0, 1e4), min_size=n_assets, max_size=n_assets),
                                  min_size=n, max_size=n)))
    debt = np.array(draw(st.lists(st.floats(0.0, 2e7), min_size=n, max_size=n)))
    lt = np.array(draw(st.lists(st.floats(0.3, 0.97), min_size=n_assets, max_size=n_assets)))
    p0 = np.array(draw(st.lists(st.floats(1.0, 5000.0), min_size=n_assets, max_size=n_assets)))
    drops = draw(st.lists(st.floats(0.0, 0.3), min_size=1, max_size=8))
    path = [np.append(p0 * np.prod([1 - d for d in drops[: i + 1]]), 1.0) for i in range(len(drops))]
    return PositionBook.of(coll, debt, lt), path




def variants() -> list[dict[str, str]]:
    """Every registered id with its defaults, plus each of its presets (e.g. fixed_bonus compound_v2)."""
    out = []
    for kind in sorted(REGISTRY):
        cfg = REGISTRY[kind].Config
        out.append({"kind": kind})
        out += [{"kind": kind, cfg.PRESET_KEY: p} for p in getattr(cfg, "PRESETS", {}) if p != getattr(
            parse_config({"kind": kind}, "m"), cfg.PRESET_KEY)]
    return out


@pytest.mark.parametrize("table", variants(), ids=lambda t: "-".join(t.values()))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=books())
def test_conformance(table: dict[str, str], case: tuple[PositionBook, list[np.ndarray]]) -> None:
    """Conservation, debt never rises, seized <= collateral, no NaN/inf, determinism."""
    book, path = case
    config = parse_config(table, "mechanism")
    violations = exercise(lambda: make(config, 0, book.n_assets), book, path, hold_steps=30)
    assert violations == []


@pytest.mark.parametrize("kind", sorted(REGISTRY), ids=str)
def test_empty_book_gives_no_fills(kind: str) -> None:
    config = parse_config({"kind": kind}, "mechanism")
    empty = PositionBook.of(np.zeros((0, 1)), np.zeros(0), np.array([0.8]))
    assert empty_book_fills(lambda: make(config, 0, 1), empty, np.array([100.0, 1.0])) == []


@settings(max_examples=60, deadline=None)
@given(bonus=st.floats(0.0, 0.2), close_factor=st.floats(0.05, 1.0), case=books())
def test_fixed_bonus_any_parameters(bonus: float, close_factor: float,
                                    case: tuple[PositionBook, list[np.ndarray]]) -> None:
    """The conformance suite holds over the whole fixed_bonus parameter range."""
    book, path = case
    config = parse_config({"kind": "fixed_bonus", "bonus": bonus, "close_factor": close_factor}, "mechanism")
    assert exercise(lambda: make(config, 0, book.n_assets), book, path) == []
