"""Validation: closed-form and historical checks that show the testbed reproduces what is known.

Importing the package registers every check (``CHECKS``); :func:`run_checks` runs them
and ``cascadelab validate`` prints the table.  See ``core`` for the framework,
``closed_form`` and ``historical`` for the checks, ``report`` for the table.
"""

from __future__ import annotations

from cascadelab.validation import closed_form as closed_form  # noqa: F401 - registers checks
from cascadelab.validation import historical as historical  # noqa: F401 - registers checks
from cascadelab.validation.core import (
    CHECKS,
    Abs,
    Check,
    CheckResult,
    Factor,
    Outcome,
    Rel,
    Within,
    add,
    run_check,
    run_checks,
    select,
)

__all__ = ["CHECKS", "Abs", "Check", "CheckResult", "Factor", "Outcome", "Rel", "Within", "add",
           "run_check", "run_checks", "select"]
