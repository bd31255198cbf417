"""The liquidation-mechanism interface (DESIGN.md section 5) and the records it exchanges.

A mechanism is told which positions became liquidatable (``start``), publishes what can
be taken now and at what terms (``offers``), turns keepers' bids into fills (``settle``,
the only way collateral leaves a position), and handles expiries, resets, backstop
absorption and write-offs (``end_step``).  Mechanisms are deterministic and hold no
random state: all randomness lives in the market and the agents.

Offers are linear: a taker pays ``x`` debt-asset units with ``min_pay <= x <= max_pay``,
receives ``x * receive_per_pay`` collateral units (one column per asset) and the
position's debt falls by ``x * repay_per_pay``.  Fixed-bonus liquidation, Dutch
auctions, partial liquidation and store-front sales are all of this form; mechanisms
whose terms are not linear (English auctions) subclass :class:`Offers` with the extra
fields their bidders need.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from cascadelab.book import PositionBook

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# Counterparty codes for fills that no keeper takes (keepers are numbered from 0).
BORROWER = -1
"""The position's owner (top-ups, repayments, deleveraging, collateral returned)."""
PROTOCOL = -2
"""The protocol itself (write-offs, fees, absorption into reserves)."""
POOL = -3
"""A backstop / stability pool."""
REDISTRIBUTION = -4
"""Other borrowers of the same protocol (Liquity-style redistribution)."""


_NO_STEPS = np.zeros(0, dtype=np.int64)
_NO_STEPS.flags.writeable = False


def _f(shape: tuple[int, ...] = (0,)) -> Any:
    return field(default_factory=lambda: np.zeros(shape))


@dataclass(frozen=True)
class Offers:
    """What can be taken now, at what terms, and how much (one row per offer)."""

    position: IntArray
    max_pay: FloatArray
    receive_per_pay: FloatArray  # (k, A)
    repay_per_pay: FloatArray
    min_pay: FloatArray
    since: IntArray  # step at which the offer (liquidatability / auction) started

    @property
    def size(self) -> int:
        return int(self.position.shape[0])

    @classmethod
    def empty(cls, n_assets: int) -> Offers:
        return cls(
            position=np.zeros(0, dtype=np.int64),
            max_pay=np.zeros(0),
            receive_per_pay=np.zeros((0, n_assets)),
            repay_per_pay=np.zeros(0),
            min_pay=np.zeros(0),
            since=np.zeros(0, dtype=np.int64),
        )


@dataclass(frozen=True)
class OfferCeiling:
    """Bounds on every linear offer a mechanism could publish now, given without building the offers.

    One row per position that could be on offer (a superset of the offers): no offer on it lets
    a taker pay more than ``max_pay`` = min(pay_cap, pay_base x pay_scale) or receive more than
    ``receive_per_pay`` = receive_base x receive_scale units of each asset per unit paid.
    Ceilings with the same ``basis`` share the arrays and differ only in the two scales, so a
    later ceiling's bounds are an earlier one's times scalar factors.  ``cascadelab.take_bound``
    turns them into a proof that no keeper takes anything, so a step in which liquidatable
    positions are not worth taking costs little more than a quiet one.
    """

    basis: object
    pay_cap: FloatArray  # (k,)
    pay_base: FloatArray  # (k,)
    pay_scale: float
    receive_base: FloatArray  # (k, A)
    receive_scale: float

    @property
    def size(self) -> int:
        return int(self.pay_cap.shape[0])

    @property
    def max_pay(self) -> FloatArray:
        return np.minimum(self.pay_cap, self.pay_base * self.pay_scale)

    @property
    def receive_per_pay(self) -> FloatArray:
        return self.receive_base * self.receive_scale


@dataclass(frozen=True)
class Bids:
    """Keepers' bids: which offer, who, how much they pay (in priority order)."""

    offer: IntArray
    taker: IntArray
    pay: FloatArray

    @property
    def size(self) -> int:
        return int(self.offer.shape[0])

    @classmethod
    def empty(cls) -> Bids:
        """No bids (one shared instance: arrays of size 0 hold nothing to change)."""
        return _NO_BIDS

    @classmethod
    def concat(cls, parts: list[Bids]) -> Bids:
        parts = [b for b in parts if b.size]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(b, f.name) for b in parts]) for f in fields(cls)))


@dataclass(frozen=True)
class Fills:
    """Who got what: the only record that changes positions (applied by PositionBook.apply).

    Per row: ``seized`` collateral units leave the position (negative: added), of which
    ``to_protocol`` is kept by the protocol and the rest goes to ``taker``; the taker
    pays ``paid`` debt-asset units, of which ``repaid`` reduces the position's debt (the
    excess is a penalty kept by the protocol); ``written_off`` debt is cancelled as bad
    debt.  Amounts are in the position's own units.  ``incentive`` is paid by the protocol to
    the taker in debt-asset units on top of all that (Maker Liq 2.0 keeper rewards ``tip +
    chip * tab`` for bark/redo); it moves nothing in the position and defaults to zeros.
    """

    position: IntArray
    taker: IntArray
    repaid: FloatArray
    paid: FloatArray
    seized: FloatArray  # (k, A)
    to_protocol: FloatArray  # (k, A)
    written_off: FloatArray
    incentive: FloatArray | None = None  # None: zeros

    def __post_init__(self) -> None:
        if self.incentive is None:
            object.__setattr__(self, "incentive", np.zeros(self.position.shape[0]))

    @property
    def size(self) -> int:
        return int(self.position.shape[0])

    @property
    def received(self) -> FloatArray:
        """Collateral units that reach the taker."""
        return self.seized - self.to_protocol

    @classmethod
    def empty(cls, n_assets: int) -> Fills:
        """No fills (one shared instance per asset count: arrays of size 0 hold nothing to change)."""
        fills = _EMPTY_FILLS.get(n_assets)
        if fills is None:
            z = np.zeros(0)
            fills = _EMPTY_FILLS[n_assets] = cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), z, z,
                                                 np.zeros((0, n_assets)), np.zeros((0, n_assets)), z, z)
        return fills

    @classmethod
    def make(cls, position: IntArray, taker: IntArray | int, n_assets: int, *,
             repaid: FloatArray | float = 0.0, paid: FloatArray | None = None,
             seized: FloatArray | None = None, to_protocol: FloatArray | None = None,
             written_off: FloatArray | float = 0.0, incentive: FloatArray | float = 0.0) -> Fills:
        """Build fills with zero defaults for the parts a mechanism does not use."""
        position = np.asarray(position, dtype=np.int64)
        k = position.shape[0]
        repaid_a = _column(repaid, k, np.float64)
        return cls(
            position=position,
            taker=_column(taker, k, np.int64),
            repaid=repaid_a,
            paid=repaid_a.copy() if paid is None else np.asarray(paid, dtype=np.float64),
            seized=np.zeros((k, n_assets)) if seized is None else np.asarray(seized, dtype=np.float64),
            to_protocol=np.zeros((k, n_assets)) if to_protocol is None else np.asarray(to_protocol, dtype=np.float64),
            written_off=_column(written_off, k, np.float64),
            incentive=_column(incentive, k, np.float64),
        )

    @classmethod
    def concat(cls, parts: list[Fills], n_assets: int) -> Fills:
        parts = [f for f in parts if f.size]
        if not parts:
            return cls.empty(n_assets)
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(f, fl.name) for f in parts]) for fl in fields(cls)))


def _column(value: npt.ArrayLike, k: int, dtype: type) -> npt.NDArray[Any]:
    """A fresh length-k column from a scalar (repeated) or an array broadcastable to (k,).

    ``np.full`` for the scalar case: the same values as broadcasting and copying, at a third of
    the cost (``Fills.make`` runs at every step with fills).
    """
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        return np.full(k, arr, dtype=dtype)
    return arr.copy() if arr.shape == (k,) else np.broadcast_to(arr, (k,)).copy()


_EMPTY_FILLS: dict[int, Fills] = {}
_NO_BIDS = Bids(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))


class LiquidationMechanism(Protocol):
    """What every registered mechanism implements (DESIGN.md section 5)."""

    name: ClassVar[str]

    def start(self, unhealthy: IntArray, t: int) -> None: ...

    def offers(self, book: PositionBook, oracle_px: FloatArray, t: int) -> Offers: ...

    def settle(self, book: PositionBook, bids: Bids, t: int) -> Fills: ...

    def end_step(self, book: PositionBook, t: int) -> Fills: ...


class MechanismBase:
    """Shared plumbing: configuration, protocol index, and the liquidatable set.

    Subclasses set ``name`` (registry id), ``Config`` (a frozen dataclass of parameters
    with production defaults), ``source`` (where the formulas come from) and implement
    ``offers``/``settle``.  ``dt_seconds`` is the length of a step, for parameters given in
    seconds.  ``caller`` is the keeper that calls permissionless upkeep this round (Maker's
    bark/redo/bite): the model sets it to the first keeper in the step's order that can get
    included at the current gas price, or -1 when none can; mechanisms that pay upkeep
    incentives pay them to it.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    source: ClassVar[str] = ""
    QUIET_WITHOUT_LIQUIDATABLE: ClassVar[bool] = False
    """Offers and settle do nothing (and change nothing) while no position is liquidatable."""

    def __init__(self, config: Any, protocol: int, n_assets: int, *, dt_seconds: float = 60.0) -> None:
        self.config = config
        self.protocol = protocol
        self.n_assets = n_assets
        self.dt_seconds = float(dt_seconds)
        self.caller = 0
        self.liquidatable = np.zeros(0, dtype=np.int64)
        self.since = np.zeros(0, dtype=np.int64)
        self._first_seen = np.zeros(0, dtype=np.int64)  # step a position became liquidatable, -1 if healthy
        self._started = np.zeros(0, dtype=np.int64)  # the positions holding a step in _first_seen
        self._offer_inputs: tuple[int, IntArray, IntArray, FloatArray] | None = None  # see same_offer_inputs

    def start(self, unhealthy: IntArray, t: int) -> None:
        """Remember which positions are liquidatable now and since when (vectorised, O(changed)).

        Only the positions liquidatable at the previous call hold a start step (``_started``),
        so resetting those, not the whole array, is the same as resetting every position that
        is not liquidatable now.
        """
        if unhealthy is self.liquidatable and not unhealthy.flags.writeable:
            return  # the model's read-only array of the last call (its health band held): the same positions
        unhealthy = np.asarray(unhealthy, dtype=np.int64)
        if unhealthy.size == 0 and self._started.size == 0:  # nothing was or is liquidatable
            self.liquidatable = unhealthy
            self.since = _NO_STEPS
            return
        if np.array_equal(unhealthy, self._started):  # the same positions as last time: the same start steps
            self.liquidatable = unhealthy
            return
        first = self._first_seen
        need = int(unhealthy.max()) + 1 if unhealthy.size else 0
        if need > first.size:
            first = np.concatenate([first, np.full(need - first.size, -1, dtype=np.int64)])
        kept = first[unhealthy]
        first[self._started] = -1
        first[unhealthy] = kept
        fresh = unhealthy[first[unhealthy] < 0]
        first[fresh] = t
        self._first_seen = first
        self._started = unhealthy.copy()
        self.liquidatable = unhealthy
        self.since = first[unhealthy]

    def idle(self) -> bool:
        """True when offers and settle would do nothing this step, so the model may skip them.

        Conservative by default; mechanisms whose offers come only from the liquidatable set
        (``QUIET_WITHOUT_LIQUIDATABLE``) are idle when it is empty.  ``end_step`` is always called.
        """
        return self.QUIET_WITHOUT_LIQUIDATABLE and self.liquidatable.size == 0

    def same_offer_inputs(self, book: PositionBook, oracle_px: FloatArray) -> bool:
        """True if the liquidatable set, its start steps, the book and the oracle prices are those of the last call.

        For mechanisms whose offers are a function of exactly these (fixed bonus, partial),
        the offers built then are still the offers now: positions change only through
        ``book.apply`` (which bumps the version of the protocols it touches: ``book.protocol_version``).
        Remembers the inputs for the next call.
        """
        last = self._offer_inputs
        version = book.protocol_version[self.protocol]
        same = (last is not None and last[0] == version and np.array_equal(last[1], self.liquidatable)
                and np.array_equal(last[2], self.since) and np.array_equal(last[3], oracle_px))
        if not same:
            self._offer_inputs = (version, self.liquidatable.copy(), self.since.copy(),
                                  np.array(oracle_px, dtype=np.float64))
        return same

    def offer_ceiling(self, book: PositionBook, oracle_px: FloatArray) -> OfferCeiling | None:
        """Bounds on the offers :meth:`offers` would publish at ``oracle_px`` now, or None if the
        mechanism cannot give them without building the offers (the default).
        A mechanism that gives them must settle no bids without a fresh call to :meth:`offers`."""
        return None

    def indebted_liquidatable(self, book: PositionBook) -> tuple[IntArray, IntArray]:
        """The liquidatable positions that still owe debt, with the step each became liquidatable."""
        keep = book.debt[self.liquidatable] > 0
        return self.liquidatable[keep], self.since[keep]

    def end_step(self, book: PositionBook, t: int) -> Fills:
        """No end-of-step work by default."""
        return Fills.empty(self.n_assets)

    def committed(self, keeper: int) -> float:
        """Debt-asset units ``keeper`` has locked in standing bids (English auctions); 0 elsewhere."""
        return 0.0

    # helpers -----------------------------------------------------------------

    @staticmethod
    def pro_rata_receive(book: PositionBook, positions: IntArray, oracle_px: FloatArray,
                         value_per_debt_unit: FloatArray) -> FloatArray:
        """Collateral units per debt unit paid, taken from each asset in proportion to its value.

        ``value_per_debt_unit`` is the USD value of collateral handed over per debt unit
        paid (e.g. (1 + bonus) * P_debt for a fixed bonus).
        """
        return pro_rata_rows(book.collateral[positions], oracle_px, value_per_debt_unit)


def pro_rata_rows(coll: FloatArray, oracle_px: FloatArray, value_per_debt_unit: FloatArray) -> FloatArray:
    """:meth:`MechanismBase.pro_rata_receive` of collateral rows ``coll`` (k, A) given directly."""
    value = (coll @ oracle_px[: coll.shape[1]])[:, None]
    units_per_usd = np.divide(coll, value, out=np.zeros_like(coll), where=value > 0)
    return units_per_usd * np.asarray(value_per_debt_unit)[:, None]
