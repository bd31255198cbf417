"""Replicates of one scenario run as a batch: their quiet steps advanced together (issue 8, "beyond").

Most steps of a run are *quiet*: no position is liquidatable, so a step only lets the venues
recover, moves the oracles and the gas price and records the state.  One by one, each such step
still costs the model's ~80-150 Python calls (~15-35 us).  :class:`ReplicateBatch` holds R
replicates of one scenario (the same spec, R seeds) as R ordinary :class:`CascadeModel` runs plus a
replicate axis over their venue displacement, observed prices and fundamental paths.  Each step it
advances every replicate's venue and prices with one set of numpy calls over R and proves, per
replicate, that nobody is liquidatable (the health of every position is its oracle price times
C LT / D, bounded below by the smallest C LT / D of the book).  Only the replicates the proof
does not cover run the engine's own :meth:`CascadeModel.step`; a replicate's quiet stretch is
written into its model (venue, oracles, gas, recorder rows, the draws the step would have made
from its Mesa rng) just before its next real step and at the end, with the same floating-point
operations.  Every replicate's :class:`RunResult` is therefore bit for bit what
``cascadelab.run(spec, seed)`` gives (tests/test_batch.py compares full fingerprints).

It pays where runs are mostly quiet and small: ``benchmarks/run.py`` measures the speed-up over
one-by-one runs.  A scenario whose quiet steps do more than the above (see :func:`batch_obstacles`)
runs its replicates one by one, with the same results.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cascadelab.model import NOBODY_LIQUIDATABLE, CascadeModel
from cascadelab.record import RunResult
from cascadelab.spec import USD, Spec

FloatArray = npt.NDArray[np.float64]

MAX_BLOCK = 256
"""Most steps proved quiet in one go; blocks start at one step after a real step and double while quiet."""

PROOF_MARGIN = 1e-9
"""Relative margin of the quiet proof: oracle price x min(C LT / D) must exceed 1 by this much, far above the
few ulps by which it and the engine's health, (C (LT P)) / D, can round apart."""


def batch_obstacles(spec: Spec) -> list[str]:
    """Why the quiet steps of ``spec`` cannot be advanced as a batch (empty: they can).

    A quiet step must be fully described by venue recovery, instant oracles, the gas base price
    and the rng draws of the cohort shuffle and the keeper order, and the proof needs one
    collateral asset with USD debt.
    """
    from mechanisms.registry import REGISTRY

    needs = {
        "one collateral asset": len(spec.assets) == 1,
        "USD debt in every protocol": all(p.debt_asset == USD for p in spec.protocols.values()),
        "instant oracles (any lag)": all(p.oracle.kind == "instant" for p in spec.protocols.values()),
        "mechanisms that do nothing while nobody is liquidatable (fixed_bonus, partial)": all(
            getattr(REGISTRY[type(p.mechanism).kind_id], "QUIET_WITHOUT_LIQUIDATABLE", False)
            and not hasattr(REGISTRY[type(p.mechanism).kind_id], "pool_for") for p in spec.protocols.values()),
        "passive borrowers": all(p.behaviour.kind == "passive" for p in spec.populations.values()),
        "unlimited arbitrage": math.isinf(spec.arbitrageurs.capital_usd_per_step),
        "no noise traders": all(n.volume_usd == 0 for n in spec.noise.values()),
        "gas paid in a token that is not a modelled asset": spec.gas.token not in spec.assets,
        "numpy's exp giving arrays the bits it gives scalars (on this machine)": exp_is_elementwise(),
    }
    return [k for k, ok in needs.items() if not ok]


@functools.cache
def exp_is_elementwise() -> bool:
    """Whether ``np.exp`` of an array gives each element the bits ``np.exp`` of that number alone gives.

    The batch makes a block's prices with one array call; the engine makes each with ``Venue.price``
    on a Python float.  numpy may take a SIMD path for one and a scalar path for the other on some
    CPUs, and those round differently in a few percent of cases, so 2,048 draws tell them apart.
    """
    x = np.random.default_rng(0).normal(0.0, 0.1, 2048)
    return all(bool(np.exp(v) == e) for v, e in zip(x.tolist(), np.exp(x), strict=True))


class ReplicateBatch:
    """R replicates of one spec; :meth:`run` returns their RunResults in seed order."""

    def __init__(self, spec: Spec, seeds: Sequence[np.random.SeedSequence], *, feedback: bool = True) -> None:
        obstacles = batch_obstacles(spec)
        if obstacles:
            raise ValueError(f"these replicates cannot run as a batch; it needs {', '.join(obstacles)}")
        if not seeds:
            raise ValueError("a batch needs at least one seed")
        self.models = [CascadeModel(spec, seq, feedback=feedback) for seq in seeds]
        first = self.models[0]
        self.n_steps = first.n_steps
        self.decay = first.venues[0].decay
        self.multiplier = first.venues[0].multiplier
        self.lags = [o.config.lag_steps for o in first.oracles]
        self.fundamental = np.stack([m.fundamental[:, 0] for m in self.models])  # (R, T + 1)
        self.observed = np.zeros_like(self.fundamental)  # market price at step 3 of each step, per replicate
        self.observed[:, 0] = self.fundamental[:, 0]
        self.z = np.zeros_like(self.fundamental)  # venue displacement at the end of each step
        # per-replicate scalars as lists: a real step reads and writes them, at list speed
        self.synced = [0] * len(self.models)  # the step each model has been advanced to
        self.least = np.stack([_least_ratio(m) for m in self.models])  # (R, P): min C LT / D of each book
        self.version = [m.book.version for m in self.models]
        self.real_steps = [0] * len(self.models)  # steps each replicate ran through the engine
        self.hot = [False] * len(self.models)  # found liquidatable positions in its last step

    def run(self) -> list[RunResult]:
        """Run every step of the horizon for all replicates."""
        t, block = 0, 1
        while t < self.n_steps:
            if all(self.hot):  # every replicate still has liquidatable positions: no proof would hold
                t += 1
                for r in range(len(self.models)):
                    self._real_step(r, t)
                continue
            size = 1 if any(self.hot) else min(block, self.n_steps - t)
            quiet = self._assume_quiet(t, size)  # (R, size): proved quiet at steps t+1 .. t+size
            quiet[np.array(self.hot)] = False
            everyone = quiet.all(axis=0)
            if everyone.all():  # nobody in any replicate liquidatable in the whole block: look further next time
                t += size
                block = min(2 * block, MAX_BLOCK)
                continue
            ahead = int(np.argmin(everyone))  # steps t+1 .. t+ahead are quiet everywhere; t+ahead+1 is not
            t += ahead + 1
            for r in np.flatnonzero(~quiet[:, ahead]):
                self._real_step(int(r), t)
            block = 1
        for r in range(len(self.models)):
            self._catch_up(r, self.n_steps)
        return [m.result() for m in self.models]

    def _assume_quiet(self, t: int, size: int) -> npt.NDArray[np.bool_]:
        """Advance every replicate's venue and observed price over steps t+1 .. t+size as if nobody traded,
        and prove where that holds: (R, size), True where no position of the replicate is liquidatable."""
        steps = np.arange(t + 1, t + size + 1)
        path = np.empty((self.z.shape[0], size + 1))
        path[:, 0] = self.z[:, t]
        path[:, 1:] = self.decay
        z = np.cumprod(path, axis=1)[:, 1:]  # z * decay, step after step (Venue.recover; 0 stays 0)
        self.z[:, steps] = z
        self.observed[:, steps] = self.fundamental[:, steps] * self.multiplier(z)  # Venue.price
        quiet = np.ones(z.shape, dtype=bool)
        for p, lag in enumerate(self.lags):
            quiet &= self.observed[:, np.maximum(steps - lag, 0)] * self.least[:, p: p + 1] > 1.0 + PROOF_MARGIN
        return quiet

    def _real_step(self, r: int, t: int) -> None:
        """Replicate r's step t through the engine (after writing its quiet steps before t).

        A replicate that found positions liquidatable in this step is *hot*: its next step runs
        through the engine without a proof (positions keepers leave alone stay liquidatable,
        step after step).  One that found none gets its bound for the proofs renewed if its book changed.
        """
        m = self.models[r]
        if self.synced[r] < t - 1:
            self._catch_up(r, t - 1)
        m.step()
        self.real_steps[r] += 1
        self.synced[r] = t
        self.z[r, t] = m.venues[0].z
        self.observed[r, t] = m.observed[t, 0]
        self.hot[r] = hot = m._unhealthy_counts is not None
        if not hot and m.book.version != self.version[r]:
            self.least[r] = _least_ratio(m)
            self.version[r] = m.book.version

    def _catch_up(self, r: int, end: int) -> None:
        """Write replicate r's quiet steps synced+1 .. end into its model, as :meth:`CascadeModel.step` would.

        Per quiet step the engine: decays the venue (``Venue.recover``: z * decay, its parts times
        the same factor, which is recorded), sets the observed price, updates the oracles (the
        observed and fundamental prices ``lag`` steps back) and the gas price (its base path,
        capped), shuffles the borrower cohorts and draws the keeper order from the model's rng,
        finds nobody liquidatable and records the state (the book is unchanged).
        """
        start = self.synced[r] + 1
        if end < start:
            return
        m = self.models[r]
        rec = m.recorder
        steps = np.arange(start, end + 1)
        z_before, z_after = self.z[r, start - 1: end], self.z[r, start: end + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where(z_before == 0.0, 1.0, z_after / z_before)
        venue = m.venues[0]
        parts = np.cumprod(np.concatenate([venue.parts[None, :], np.repeat(factor[:, None], venue.parts.size, axis=1)]),
                           axis=0)[1:]  # parts *= factor, step after step (cumprod multiplies in sequence)
        venue.z = float(z_after[-1])
        venue.parts = parts[-1].copy()
        rec.z[steps, 0] = z_after
        rec.decay[steps, 0] = factor
        rec.parts[steps, 0] = parts
        m.observed[steps, 0] = self.observed[r, start: end + 1]
        for p, (oracle, shadow) in enumerate(zip(m.oracles, m.shadow_oracles, strict=True)):
            src = np.maximum(steps - oracle.config.lag_steps, 0)
            rec.oracle[steps, p] = m.observed[src]
            rec.oracle_step[steps, p] = src[:, None]
            rec.shadow[steps, p] = m.fundamental[src]
            last = int(src[-1])
            oracle.price, shadow.price = m.observed[last].copy(), m.fundamental[last].copy()
            oracle.obs_step[:] = last
            shadow.obs_step[:] = last
        m.oracle_px = m._oracle_matrix()
        gas = np.minimum(m.gas.base[steps], m.gas.config.max_gwei)  # min(base * 1.0, max) of GasMarket.update
        rec.gas[steps] = gas
        m.gas.gwei = float(gas[-1])
        _advance_rng(m, steps.size)
        for mech in m.mechanisms:
            mech.start(NOBODY_LIQUIDATABLE, start)
        rec._totals_at[steps] = len(rec._debt_totals) - 1
        rec._collected = end
        m.t = end
        m.steps += steps.size  # Mesa's step counter (its step wrapper counts every call)
        self.synced[r] = end


def _advance_rng(m: CascadeModel, steps: int) -> None:
    """The draws ``steps`` quiet steps make from the model's rng: the cohort shuffle, then the keeper order."""
    slots = m._cohort_slots
    if slots is not None and len(slots) > 1:
        for _ in range(steps):
            m.random.shuffle(slots)
            m._keeper_order()
        return
    draw = m.random.random  # a shuffle of one slot draws nothing
    for _ in range(steps * len(m.keepers)):
        draw()


def _least_ratio(m: CascadeModel) -> FloatArray:
    """Per protocol, the smallest C LT / D over positions with debt (+inf if none): health >= oracle price x it."""
    book = m.book
    out = np.full(len(book.slices), np.inf)
    for p, s in enumerate(book.slices):
        debt = book.debt[s]
        owes = debt > 0
        if owes.any():
            with np.errstate(over="ignore"):
                out[p] = float((book.collateral[s, 0][owes] * book.lt[p, 0] / debt[owes]).min())
    return out


def run_models(spec: Spec, seeds: Sequence[np.random.SeedSequence], *, feedback: bool = True) -> list[RunResult]:
    """The RunResult of ``CascadeModel(spec, seed, feedback).run()`` for every seed, as a batch where
    :func:`batch_obstacles` allows, one by one otherwise (the same bits either way)."""
    if batch_obstacles(spec):
        return [CascadeModel(spec, seq, feedback=feedback).run().result() for seq in seeds]
    return ReplicateBatch(spec, seeds, feedback=feedback).run()

