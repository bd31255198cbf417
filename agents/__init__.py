"""Mesa agents: they carry behaviour; positions live in the PositionBook as arrays."""

from agents.arbitrageurs import Arbitrageur
from agents.borrowers import BorrowerCohort
from agents.liquidators import STRATEGIES, Liquidator
from agents.noise_traders import NoiseTrader

__all__ = ["Arbitrageur", "BorrowerCohort", "Liquidator", "NoiseTrader", "STRATEGIES"]
