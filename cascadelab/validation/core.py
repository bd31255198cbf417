"""The validation framework: checks that compare the engine with a known value, and their outcomes.

A *check* is a function with no arguments returning an :class:`Outcome` (expected value,
value the engine produced, tolerance).  It is registered with :func:`add` as a :class:`Check`:
a name, a family, a source (where the expected value comes from) and the mechanisms it
needs.  :func:`run_checks` runs them and turns each into a :class:`CheckResult` whose
status is ``pass``, ``fail``, ``error`` (the check raised: a failure too), ``skip`` (a
mechanism it needs is not registered, so nothing was compared) or ``info`` (a comparison
reported but not asserted, its reason in the note).  ``cascadelab validate`` prints these
as a table; the paper's validation section is built from it.

Tolerances say what "agrees" means and are part of the record: :class:`Rel` and
:class:`Abs` for closed forms, :class:`Factor` (order of magnitude: got/expected within
[lo, hi]) and :class:`Within` (got within a range, e.g. a direction ``> 1``) for the
historical replays, whose tolerance is stated in the scenario file's header.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["pass", "fail", "error", "skip", "info"]


# ----------------------------------------------------------------------------- tolerances


def fmt_value(value: float, unit: str = "") -> str:
    """A number as the table shows it (``usd``: dollars, ``pct``: percent, else 6 significant digits + unit)."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if unit == "usd":
        return f"${value:,.2f}" if abs(value) < 1e5 else f"${value:,.0f}"
    if unit == "pct":
        return f"{100 * value:.4g}%"
    text = f"{value:,.0f}" if abs(value) >= 1e5 else f"{value:.6g}"
    return f"{text} {unit}" if unit else text


@dataclass(frozen=True)
class Rel:
    """|got - expected| <= r * |expected|."""

    r: float

    def ok(self, expected: float, got: float) -> bool:
        return abs(got - expected) <= self.r * abs(expected)

    def text(self, unit: str = "") -> str:
        return f"rel {self.r:.0e}"


@dataclass(frozen=True)
class Abs:
    """|got - expected| <= a."""

    a: float

    def ok(self, expected: float, got: float) -> bool:
        return abs(got - expected) <= self.a

    def text(self, unit: str = "") -> str:
        return f"+-{fmt_value(self.a, unit)}"


@dataclass(frozen=True)
class Factor:
    """Order of magnitude: lo <= got / expected <= hi."""

    lo: float
    hi: float

    def ok(self, expected: float, got: float) -> bool:
        return expected != 0 and self.lo <= got / expected <= self.hi

    def text(self, unit: str = "") -> str:
        return f"x[{self.lo:g}, {self.hi:g}]"


@dataclass(frozen=True)
class Within:
    """lo <= got <= hi, whatever the expected point value (a range or a direction)."""

    lo: float = -math.inf
    hi: float = math.inf

    def ok(self, expected: float, got: float) -> bool:
        return self.lo <= got <= self.hi

    def text(self, unit: str = "") -> str:
        if math.isinf(self.hi):
            return f">= {fmt_value(self.lo, unit)}"
        if math.isinf(self.lo):
            return f"<= {fmt_value(self.hi, unit)}"
        return f"in [{fmt_value(self.lo, unit)}, {fmt_value(self.hi, unit)}]"


Tolerance = Rel | Abs | Factor | Within


@dataclass(frozen=True)
class Outcome:
    """What one check compared: the expected value, what the engine gave, and the tolerance.

    ``expected_text`` replaces the printed expected value when it is a statement rather
    than a number (a direction such as "> 1").  ``note`` carries context for the table.
    ``asserted = False`` records a comparison the model is known not to meet (status
    ``info``: reported with its reason, never counted as a pass or a failure).
    """

    expected: float
    got: float
    tolerance: Tolerance
    unit: str = ""
    expected_text: str = ""
    note: str = ""
    asserted: bool = True

    @property
    def passed(self) -> bool:
        return math.isfinite(self.got) and self.tolerance.ok(self.expected, self.got)


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Check:
    """A registered check: a name, what it validates, where the expected value comes from."""

    name: str
    family: str
    source: str
    description: str
    fn: Callable[[], Outcome]
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    """One row of the validation table."""

    name: str
    family: str
    source: str
    description: str
    status: Status
    expected: str = ""
    got: str = ""
    tolerance: str = ""
    note: str = ""
    seconds: float = 0.0
    values: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "error")


CHECKS: dict[str, Check] = {}
"""Every registered check by name, in registration order."""


def add(check: Check) -> None:
    """Register a ready Check (parametrised families register one per case)."""
    if check.name in CHECKS:
        raise ValueError(f"duplicate validation check {check.name!r}")
    CHECKS[check.name] = check


def missing_mechanisms(check: Check) -> list[str]:
    """Mechanisms the check needs that are not in the registry."""
    from mechanisms.registry import REGISTRY

    return [m for m in check.requires if m not in REGISTRY]


def run_check(check: Check) -> CheckResult:
    """Run one check; never raises (an exception becomes status ``error`` with its message)."""
    base = dict(name=check.name, family=check.family, source=check.source, description=check.description)
    missing = missing_mechanisms(check)
    if missing:
        return CheckResult(**base, status="skip",
                           note=f"skipped: mechanism {', '.join(missing)} not registered")
    start = time.perf_counter()
    try:
        out = check.fn()
    except Exception as exc:  # a broken check is a failed check, reported with its cause
        last = traceback.extract_tb(exc.__traceback__)[-1]
        return CheckResult(**base, status="error", note=f"{type(exc).__name__}: {exc} ({last.name}:{last.lineno})",
                           seconds=time.perf_counter() - start)
    return CheckResult(
        **base,
        status=("pass" if out.passed else "fail") if out.asserted else "info",
        expected=out.expected_text or fmt_value(out.expected, out.unit),
        got=fmt_value(out.got, out.unit),
        tolerance=out.tolerance.text(out.unit),
        note=out.note,
        seconds=time.perf_counter() - start,
        values={"expected": float(out.expected), "got": float(out.got)},
    )


def select(patterns: Iterable[str] = ()) -> list[Check]:
    """Registered checks whose name contains, or whose family equals, any of ``patterns`` (all if none)."""
    pats = list(patterns)
    return [c for c in CHECKS.values() if not pats or any(p in c.name or p == c.family for p in pats)]


def run_checks(checks: Iterable[Check] | None = None,
               progress: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run checks (default: all registered) in order; ``progress`` is called after each."""
    results = []
    for c in CHECKS.values() if checks is None else checks:
        r = run_check(c)
        results.append(r)
        if progress is not None:
            progress(r)
    return results
