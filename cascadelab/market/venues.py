"""Venues: where collateral is sold, with price impact, and recovery toward the fundamental.

Each venue is centred on its asset's fundamental F_t: its market price is
P_t = F_t * m(z_t), where the displacement state z is moved by trades and decays toward 0
with the venue's half-life (arbitrage with the wider market).  Kinds (DESIGN.md section 6):

- ``constant_product``: Uniswap v2 with constant liquidity L = sqrt(x*y), set so the pool is
  worth ``depth_usd`` at the initial price (L = depth / (2 sqrt(P0))).  At price P the pool
  holds x = L/sqrt(P); selling q units (fee f on the input) moves the price to
  P * (x / (x + q(1-f)))^2 and pays L (sqrt(P) - sqrt(P')).  z = ln(P/F).
  Source: shared/reference/mechanisms.md section 8.1 (Uniswap/v2-periphery UniswapV2Library.sol).
- ``transient_impact``: z is the fractional displacement, P = F (1 + z); a signed sell volume
  u (USD at F, net of decay) gives z(u) = -0.1 (u/V) (``linear``, Kyle's lambda) or
  -0.1 sign(u) sqrt(|u|/V) (``sqrt``, the square-root law), V = ``depth_usd`` (the volume that
  moves the price 10%).  Trades execute at the exact average of the curve they walk.
  Source: mechanisms.md section 8.4 (Almgren-Chriss, Donier & Bonart 2015).
- ``none``: trades never move the price (execution at F, minus the fee).

Impact attribution: every trade records its change of z, tagged by source; decay
multiplies z, hence every source's share, by the same factor, so the parts always sum to
z exactly.  For ``constant_product`` the parts add in log-price space; for ``sqrt`` a
trade's part is its marginal effect given the trades before it (execution order).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from cascadelab.spec import VenueConfig

FloatArray = npt.NDArray[np.float64]

PRICE_FLOOR = 1e-3
"""Transient-impact venues never quote below this fraction of the fundamental."""


class Venue:
    """One asset's venue: state ``z``, its attribution ``parts`` by source, and trade maths."""

    def __init__(self, config: VenueConfig, initial_price: float, n_sources: int) -> None:
        self.config = config
        self.kind = config.kind
        self.fee = config.fee
        self.z = 0.0
        self.parts = np.zeros(n_sources)
        self.decay = 0.5 ** (1.0 / config.recovery_halflife_steps)
        self.liquidity = config.depth_usd / (2.0 * math.sqrt(initial_price))  # constant_product L
        self.depth = config.depth_usd  # transient_impact V
        self.linear = config.impact == "linear"
        self.inventory = 0.0  # net units sold into the venue (for conservation checks)
        self.volume_usd = 0.0

    # ------------------------------------------------------------- price and state

    def multiplier(self, z: float | FloatArray | None = None) -> float | FloatArray:
        """P / F for displacement state z (default: the current state)."""
        z = self.z if z is None else z
        if self.kind == "constant_product":
            return np.exp(z)
        if self.kind == "transient_impact":
            return np.maximum(1.0 + z, PRICE_FLOOR)
        return np.ones_like(z) if isinstance(z, np.ndarray) else 1.0

    def price(self, fundamental: float) -> float:
        return float(fundamental * self.multiplier())

    def recover(self, fundamental: float, capital_usd: float = math.inf) -> float:
        """Decay the displacement by one step's half-life factor, limited by arbitrage capital.

        Returns the factor applied to z (1 means no recovery), which also scales every part.
        """
        if self.z == 0.0:
            return 1.0
        target = self.z * self.decay
        if math.isfinite(capital_usd):
            needed = self._volume_between(self.z, target, fundamental)  # signed: <0 means arbitrage buys
            if capital_usd <= 0:
                target = self.z
            elif abs(needed) > capital_usd:
                target = self._z_after_volume(self.z, math.copysign(capital_usd, needed), fundamental)
        factor = target / self.z
        self.z = target
        self.parts *= factor
        return factor

    def size_ratio(self, qty: float, price: float) -> float:
        """A constant-product sale's units after the fee over the pool's reserve x = L / sqrt(P) at ``price``
        (its value over the depth L sqrt(P)); 0 for the other kinds, whose depth does not move with price."""
        if self.kind != "constant_product":
            return 0.0
        return qty * (1.0 - self.fee) * math.sqrt(price) / self.liquidity

    # ------------------------------------------------------------- trades

    def quote_sell(self, qty: FloatArray, fundamental: float, z: float | None = None) -> FloatArray:
        """USD proceeds of selling each of ``qty`` units from state z (hypothetical, vectorised)."""
        qty = np.asarray(qty, dtype=np.float64)
        z0 = self.z if z is None else z
        if self.kind == "none":
            return qty * fundamental * (1.0 - self.fee)
        if self.kind == "constant_product":
            sqrt_p = math.sqrt(fundamental * math.exp(z0))
            x = self.liquidity / sqrt_p
            q_eff = qty * (1.0 - self.fee)
            pool_after = x + q_eff
            q_eff *= self.liquidity * sqrt_p  # in place: (L sqrt_p) q_eff / (x + q_eff) with two temporaries, not four
            q_eff /= pool_after
            return q_eff
        u0 = self._u_of_z(z0)
        u1 = u0 + qty * fundamental * (1.0 - self.fee)
        return self._G(u1) - self._G(u0)  # u is USD at F, so the integral of P/F over u is USD

    def marginal_sell(self, qty: FloatArray, fundamental: float, z: float | None = None) -> FloatArray:
        """USD per unit of the last unit sold when selling each of ``qty`` units from state z: the slope of
        :meth:`quote_sell` in ``qty``.  It never rises with ``qty`` (proceeds are concave in size), so a
        tangent of the proceeds lies above them everywhere (``cascadelab.take_bound``)."""
        qty = np.asarray(qty, dtype=np.float64)
        z0 = self.z if z is None else z
        if self.kind == "none":
            return np.full_like(qty, fundamental * (1.0 - self.fee))
        if self.kind == "constant_product":
            sqrt_p = math.sqrt(fundamental * math.exp(z0))
            x = self.liquidity / sqrt_p
            pool_after = x + qty * (1.0 - self.fee)
            return (1.0 - self.fee) * self.liquidity * sqrt_p * x / (pool_after * pool_after)
        u = self._u_of_z(z0) + qty * fundamental * (1.0 - self.fee)
        r = u / self.depth
        z = -0.1 * r if self.linear else -0.1 * np.sign(r) * np.sqrt(np.abs(r))
        return fundamental * (1.0 - self.fee) * np.maximum(1.0 + z, PRICE_FLOOR)  # the price multiplier, dG/du

    def quote_buy(self, qty: FloatArray, fundamental: float, z: float | None = None) -> FloatArray:
        """USD cost of buying each of ``qty`` units from state z (inf if the pool cannot deliver)."""
        qty = np.asarray(qty, dtype=np.float64)
        z0 = self.z if z is None else z
        if self.kind == "none":
            return qty * fundamental / (1.0 - self.fee)
        if self.kind == "constant_product":
            sqrt_p = math.sqrt(fundamental * math.exp(z0))
            x = self.liquidity / sqrt_p
            with np.errstate(divide="ignore"):
                cost = self.liquidity * sqrt_p * qty / np.maximum(x - qty, 0.0) / (1.0 - self.fee)
            return np.where(qty < x, cost, np.inf)
        # transient impact: buying q units worth u USD at F walks the curve upward
        u0 = self._u_of_z(z0)
        u1 = u0 - qty * fundamental
        return (self._G(u0) - self._G(u1)) / (1.0 - self.fee)

    def sell(self, qty: float, fundamental: float, source: int) -> float:
        """Sell ``qty`` units now: moves the price, attributes the move to ``source``; returns USD."""
        if qty <= 0:
            return 0.0
        proceeds = float(self.quote_sell(np.array([qty]), fundamental)[0])
        if self.kind == "constant_product":
            x = self.liquidity / math.sqrt(fundamental * math.exp(self.z))
            dz = 2.0 * math.log(x / (x + qty * (1.0 - self.fee)))
        elif self.kind == "transient_impact":
            dz = self._z_of_u(self._u_of_z(self.z) + qty * fundamental * (1.0 - self.fee)) - self.z
        else:
            dz = 0.0
        self._move(dz, source)
        self.inventory += qty
        self.volume_usd += proceeds
        return proceeds

    def buy(self, qty: float, fundamental: float, source: int) -> float:
        """Buy ``qty`` units now (e.g. the debt asset to repay with); returns the USD cost."""
        if qty <= 0:
            return 0.0
        cost = float(self.quote_buy(np.array([qty]), fundamental)[0])
        if not math.isfinite(cost):
            raise ValueError("buy larger than the pool's reserves")
        if self.kind == "constant_product":
            x = self.liquidity / math.sqrt(fundamental * math.exp(self.z))
            dz = 2.0 * math.log(x / (x - qty))
        elif self.kind == "transient_impact":
            dz = self._z_of_u(self._u_of_z(self.z) - qty * fundamental) - self.z
        else:
            dz = 0.0
        self._move(dz, source)
        self.inventory -= qty
        self.volume_usd += cost
        return cost

    def trade_usd(self, usd: float, fundamental: float, source: int) -> float:
        """Signed trade by USD notional at the fundamental (>0 sells, <0 buys); returns units traded."""
        qty = abs(usd) / fundamental
        if usd > 0:
            self.sell(qty, fundamental, source)
            return qty
        if self.kind == "constant_product":
            qty = min(qty, 0.5 * self.liquidity / math.sqrt(fundamental * math.exp(self.z)))
        self.buy(qty, fundamental, source)
        return -qty

    def _move(self, dz: float, source: int) -> None:
        self.z += dz
        self.parts[source] += dz

    # ------------------------------------------------------------- transient-impact curve

    def _z_of_u(self, u: float) -> float:
        """Displacement after net sold volume u (USD at F): the impact curve."""
        r = u / self.depth
        z = -0.1 * r if self.linear else -0.1 * math.copysign(math.sqrt(abs(r)), r)
        return max(z, PRICE_FLOOR - 1.0)

    def _u_of_z(self, z: float) -> float:
        """Net sold volume equivalent to displacement z (inverse of the impact curve)."""
        s = -z / 0.1
        return self.depth * (s if self.linear else math.copysign(s * s, s))

    def _G(self, u: FloatArray | float) -> FloatArray:
        """Antiderivative of the price multiplier max(1 + z(u), floor) over sold volume u."""
        u = np.asarray(u, dtype=np.float64)
        v = self.depth
        if self.linear:
            u_star = (1.0 - PRICE_FLOOR) / 0.1 * v
            uc = np.minimum(u, u_star)
            g = uc - 0.05 * uc * uc / v
        else:
            u_star = ((1.0 - PRICE_FLOOR) / 0.1) ** 2 * v
            uc = np.minimum(u, u_star)
            g = uc - 0.1 * (2.0 / 3.0) * np.abs(uc) ** 1.5 / math.sqrt(v)
        return g + PRICE_FLOOR * np.maximum(u - u_star, 0.0)

    def _volume_between(self, z0: float, z1: float, fundamental: float) -> float:
        """USD notional (at F) that moves the state from z0 to z1."""
        if self.kind == "constant_product":
            x0 = self.liquidity / math.sqrt(fundamental * math.exp(z0))
            x1 = self.liquidity / math.sqrt(fundamental * math.exp(z1))
            return (x1 - x0) * fundamental
        if self.kind == "transient_impact":
            return self._u_of_z(z1) - self._u_of_z(z0)
        return 0.0

    def _z_after_volume(self, z0: float, usd: float, fundamental: float) -> float:
        """State after trading ``usd`` (at F; >0 sells) from z0, ignoring fees (arbitrage flow)."""
        if self.kind == "constant_product":
            x0 = self.liquidity / math.sqrt(fundamental * math.exp(z0))
            x1 = max(x0 + usd / fundamental, 1e-12)
            return 2.0 * math.log(self.liquidity / x1) - math.log(fundamental)
        if self.kind == "transient_impact":
            return self._z_of_u(self._u_of_z(z0) + usd)
        return z0
