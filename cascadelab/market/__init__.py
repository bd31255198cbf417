"""The market: fundamental prices, venues with price impact, oracles and gas."""

from cascadelab.market.gas import GasMarket
from cascadelab.market.oracles import Oracle
from cascadelab.market.prices import fundamental_paths
from cascadelab.market.venues import Venue

__all__ = ["GasMarket", "Oracle", "Venue", "fundamental_paths"]
