"""Golden outputs: the default scenario's metrics must not change unless we mean them to.

Regenerate deliberately with ``pytest tests/test_golden.py --update-golden`` and let the diff
of tests/golden/*.json show in review.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cascadelab

GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "default": (None, {}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_metrics(name: str, request: pytest.FixtureRequest) -> None:
    spec, overrides = CASES[name]
    result = cascadelab.run(spec, overrides=overrides)
    got = {"metrics": result.metrics, "per_protocol": result.per_protocol}
    path = GOLDEN / f"{name}.json"
    if request.config.getoption("--update-golden"):
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    assert set(expected["metrics"]) <= set(got["metrics"]), "a golden metric disappeared"
    for key, value in expected["metrics"].items():
        assert got["metrics"][key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    for proto, metrics in expected["per_protocol"].items():
        for key, value in metrics.items():
            assert got["per_protocol"][proto][key] == pytest.approx(value, rel=1e-9, abs=1e-9), (proto, key)
