"""Liquidation mechanisms: one module per family, a registry, and a conformance suite."""

from mechanisms.base import (
    BORROWER,
    POOL,
    PROTOCOL,
    REDISTRIBUTION,
    Bids,
    Fills,
    LiquidationMechanism,
    Offers,
)
from mechanisms.registry import REGISTRY, describe, make, parse_config

__all__ = [
    "BORROWER", "POOL", "PROTOCOL", "REDISTRIBUTION", "Bids", "Fills", "LiquidationMechanism", "Offers",
    "REGISTRY", "describe", "make", "parse_config",
]
