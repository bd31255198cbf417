"""Shared fixtures: small hand-computable scenarios."""

from __future__ import annotations

import copy
import socket
from typing import Any

import pytest
from hypothesis import settings

# CI and the default run are reproducible (same examples every time); explore new ones with
# `pytest --hypothesis-profile=explore`.
settings.register_profile("default", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=500)
settings.load_profile("default")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach the network (Dask LocalCluster uses loopback, which stays allowed)."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0") and "/" not in host:
            raise RuntimeError(f"network access in a test: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def single_position_spec(price_path: list[list[float]], *, collateral: float = 10.0, debt: float = 15_000.0,
                         lt: float = 0.825, bonus: float = 0.05, close_factor: float = 0.5,
                         venue: str = "none", fee: float = 0.0, steps: int | None = None,
                         mechanism: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ETH position, a scripted price path, instant oracle, one keeper without gas costs.

    ``mechanism`` replaces the fixed-bonus table (e.g. ``{"kind": "partial", ...}``) or, without
    a ``kind``, adds keys to it.
    """
    mech: dict[str, Any] = {"kind": "fixed_bonus", "bonus": bonus, "close_factor": close_factor}
    if mechanism is not None:
        mech = dict(mechanism) if "kind" in mechanism else {**mech, **mechanism}
    steps = steps if steps is not None else int(price_path[-1][0])
    return copy.deepcopy({
        "run": {"steps": steps, "dt_seconds": 60, "seed": 1},
        "assets": {"ETH": {"process": "path", "path": price_path}},
        "venues": {"ETH": {"kind": venue, "fee": fee, "depth_usd": 1e7, "recovery_halflife_steps": 10}},
        "protocols": {"lender": {
            "mechanism": mech,
            "oracle": {"kind": "instant"},
            "markets": {"ETH": {"liquidation_threshold": lt}},
        }},
        "positions": [{"protocol": "lender", "collateral": {"ETH": collateral}, "debt": debt, "name": "alice"}],
        "liquidators": {"count": 1, "capital_usd": 1e9, "gas_units": 0.0, "min_profit_usd": 0.0},
    })


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/*.json from this run")
