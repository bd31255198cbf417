"""Functions with known sensitivity indices, evaluated through the same runner and store as a scenario.

A sweep spec names one with ``function = "cascadelab.sweep.testfns:ishigami"``; it is called as
``f(values, seed)`` with the parameter values by name and the run's SeedSequence, and returns
its outputs by name.  They validate the harness (SALib's habit: test against an analytic
answer) and exercise its fault handling.

Ishigami (Ishigami & Homma 1990; SALib.test_functions.Ishigami, a = 7, b = 0.1, x_i ~ U(-pi, pi)):
y = sin x1 + a sin^2 x2 + b x3^4 sin x1.  With V1 = (1 + b pi^4/5)^2 / 2, V2 = a^2/8,
V13 = b^2 pi^8 (1/18 - 1/50) and V = V1 + V2 + V13:
S1 = (0.3139, 0.4424, 0), ST = (0.5576, 0.4424, 0.2437), S13 = 0.2437.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np

A, B = 7.0, 0.1


def ishigami_indices() -> dict[str, tuple[float, float, float]]:
    """The analytic first-order and total indices of Ishigami's function (module docstring)."""
    v1 = 0.5 * (1 + B * math.pi**4 / 5) ** 2
    v2 = A**2 / 8
    v13 = B**2 * math.pi**8 * (1 / 18 - 1 / 50)
    v = v1 + v2 + v13
    return {"S1": (v1 / v, v2 / v, 0.0), "ST": ((v1 + v13) / v, v2 / v, v13 / v), "S13": (v13 / v, 0.0, 0.0)}


def _ishigami(x: Mapping[str, float]) -> float:
    x1, x2, x3 = x["x1"], x["x2"], x["x3"]
    return math.sin(x1) + A * math.sin(x2) ** 2 + B * x3**4 * math.sin(x1)


def ishigami(values: Mapping[str, float], seed: np.random.SeedSequence) -> dict[str, float]:
    """``y``: Ishigami of x1, x2, x3 (any other parameter is inert); ``y_noisy``: y + N(0, 1) from the run's seed."""
    y = _ishigami(values)
    noise = float(np.random.default_rng(seed).standard_normal())
    return {"y": y, "y_noisy": y + noise}


def ishigami_failing(values: Mapping[str, float], seed: np.random.SeedSequence) -> dict[str, float]:
    """Ishigami that raises where x1 > 2.5 (about 10% of a uniform design): a model that sometimes breaks."""
    if values["x1"] > 2.5:
        raise ValueError(f"x1 = {values['x1']:.3f} is beyond the model's domain")
    return ishigami(values, seed)


def slow_linear(values: Mapping[str, float], seed: np.random.SeedSequence) -> dict[str, float]:
    """y = 4a + 2b + c + N(0, 0.1) after sleeping 20 ms: a run long enough to be killed mid-sweep."""
    time.sleep(0.02)
    noise = 0.1 * float(np.random.default_rng(seed).standard_normal())
    return {"y": 4 * values["a"] + 2 * values["b"] + values.get("c", 0.0) + noise}
