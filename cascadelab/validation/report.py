"""The validation table: check, source, expected, got, tolerance, pass (text and JSON)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from cascadelab.validation.core import CheckResult

COLUMNS = ("check", "source", "expected", "got", "tolerance", "pass")


def rows(results: Sequence[CheckResult]) -> list[tuple[str, ...]]:
    """Table rows in COLUMNS order; a skipped check shows its reason in the ``got`` column."""
    out = []
    for r in results:
        status = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "skip": "skip", "info": "info"}[r.status]
        got = r.got if r.status in ("pass", "fail", "info") else "-"
        out.append((r.name, r.source, r.expected or "-", got, r.tolerance or "-", status))
    return out


def summary_line(results: Sequence[CheckResult]) -> str:
    counts = Counter(r.status for r in results)
    return (f"{len(results)} checks: {counts['pass']} passed, {counts['fail']} failed, "
            f"{counts['error']} errors, {counts['skip']} skipped, {counts['info']} reported only")


def format_table(results: Sequence[CheckResult]) -> str:
    """A fixed-width table grouped by family, then notes for skipped, failed and broken checks."""
    body = rows(results)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(COLUMNS)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*COLUMNS), line.format(*("-" * w for w in widths))]
    family = None
    for r, row in zip(results, body, strict=True):
        if r.family != family:
            if family is not None:
                out.append("")
            family = r.family
        out.append(line.format(*row).rstrip())
    notes = [f"  {r.name}: {r.note}" for r in results if r.note and r.status != "pass"]
    if notes:
        out += ["", "notes:", *notes]
    out += ["", summary_line(results)]
    return "\n".join(out)


def to_json(results: Sequence[CheckResult]) -> str:
    """The results as a JSON document: a list of checks and a summary."""
    data: dict[str, Any] = {
        "checks": [asdict(r) for r in results],
        "summary": dict(Counter(r.status for r in results)),
        "ok": not any(r.failed for r in results),
    }
    return json.dumps(data, indent=2)
