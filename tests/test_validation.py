"""The validation framework and the closed-form checks: every registered check is a test.

A check whose mechanism is not registered yet is skipped (with its reason), never passed;
a check reported but not asserted (status info) must still produce finite numbers.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import cascadelab
from cascadelab.cli import main
from cascadelab.validation import (
    CHECKS,
    Abs,
    Check,
    Factor,
    Outcome,
    Rel,
    Within,
    core,
    run_check,
    run_checks,
)
from cascadelab.validation import closed_form as cf
from cascadelab.validation.report import format_table, to_json


@pytest.mark.parametrize("name", list(CHECKS), ids=str)
def test_check(name: str) -> None:
    """Each registered check passes (or is skipped because its mechanism is not registered yet)."""
    result = run_check(CHECKS[name])
    if result.status == "skip":
        pytest.skip(result.note)
    if result.status == "info":
        assert math.isfinite(result.values["got"]) and result.note
        return
    assert result.status == "pass", f"{name}: expected {result.expected}, got {result.got} " \
                                     f"(tolerance {result.tolerance}) {result.note}"


# ----------------------------------------------------------------------------- the framework can fail


def test_tolerances() -> None:
    assert Outcome(1.0, 1.04, Rel(0.05)).passed and not Outcome(1.0, 1.06, Rel(0.05)).passed
    assert Outcome(0.0, 0.01, Abs(0.01)).passed and not Outcome(0.0, 0.011, Abs(0.01)).passed
    assert Outcome(1.6e6, 8e6, Factor(0.5, 5)).passed and not Outcome(1.6e6, 8.1e6, Factor(0.5, 5)).passed
    assert Outcome(0.0, 2.0, Within(1.0)).passed and not Outcome(0.0, 0.5, Within(1.0)).passed
    assert not Outcome(1.0, math.nan, Abs(1e9)).passed
    assert Factor(0.5, 5).text() == "x[0.5, 5]" and Within(5.0).text() == ">= 5"


@pytest.fixture
def fake_checks(monkeypatch: pytest.MonkeyPatch) -> dict[str, Check]:
    """A registry holding one check of each outcome (restored after the test)."""

    def boom() -> Outcome:
        raise RuntimeError("broken check")

    checks = {
        "fake.pass": Check("fake.pass", "fake", "test", "passes", lambda: Outcome(1.0, 1.0, Abs(0.0))),
        "fake.fail": Check("fake.fail", "fake", "test", "fails", lambda: Outcome(1.0, 2.0, Rel(0.1))),
        "fake.error": Check("fake.error", "fake", "test", "raises", boom),
        "fake.skip": Check("fake.skip", "fake", "test", "needs a missing mechanism",
                           lambda: Outcome(1.0, 1.0, Abs(0.0)), ("no_such_mechanism",)),
        "fake.info": Check("fake.info", "fake", "test", "reported only",
                           lambda: Outcome(385.0, 19.0, Factor(0.2, 5), asserted=False, note="why")),
    }
    monkeypatch.setattr(core, "CHECKS", checks)
    return checks


def test_statuses_and_table(fake_checks: dict[str, Check]) -> None:
    results = {r.name: r for r in run_checks(fake_checks.values())}
    assert {n: r.status for n, r in results.items()} == {
        "fake.pass": "pass", "fake.fail": "fail", "fake.error": "error", "fake.skip": "skip", "fake.info": "info"}
    assert "RuntimeError: broken check" in results["fake.error"].note
    assert results["fake.skip"].note == "skipped: mechanism no_such_mechanism not registered"
    table = format_table(list(results.values()))
    assert "FAIL" in table and "ERROR" in table and "skip" in table and "info" in table
    assert table.splitlines()[0].split() == ["check", "source", "expected", "got", "tolerance", "pass"]
    assert "5 checks: 1 passed, 1 failed, 1 errors, 1 skipped, 1 reported only" in table
    payload = json.loads(to_json(list(results.values())))
    assert payload["ok"] is False and payload["summary"]["fail"] == 1


def test_cli_exit_codes(fake_checks: dict[str, Check], capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 1 if a check that ran failed or raised; skipped and reported-only checks do not fail the run."""
    assert main(["validate", "--only", "fake.fail"]) == 1
    assert main(["validate", "--only", "fake.error"]) == 1
    assert main(["validate", "--only", "fake.pass", "fake.skip", "fake.info"]) == 0
    capsys.readouterr()
    assert main(["validate", "--only", "nothing-matches"]) == 2
    assert "no check matches" in capsys.readouterr().err
    assert main(["validate", "--list"]) == 0
    assert "needs no_such_mechanism" in capsys.readouterr().out


def test_cli_json_on_real_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--only", "cpmm", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is True and payload["summary"] == {"pass": 12}
    row = payload["checks"][0]
    assert {"name", "source", "expected", "got", "tolerance", "status"} <= set(row)


# ----------------------------------------------------------------------------- closed forms by hand


def test_fixed_bonus_closed_form_by_hand() -> None:
    """lt (1+b) = 0.825 x 1.05 = 0.86625.  Healing: H3 = 0.86625 + 0.06875 / 0.9^3 = 0.960557;
    toxic (H0 = 0.825, c = 0.5): H1 = 0.86625 - 0.04125 x 2 = 0.78375, H3 = 0.86625 - 0.04125 x 8 = 0.53625."""
    assert cf.fb_health_after(3, 0.935, 0.825, 0.05, 0.1) == pytest.approx(0.86625 + 0.06875 / 0.729, rel=1e-12)
    assert cf.fb_health_after(1, 0.825, 0.825, 0.05, 0.5) == pytest.approx(0.78375, rel=1e-12)
    assert cf.fb_health_after(3, 0.825, 0.825, 0.05, 0.5) == pytest.approx(0.53625, rel=1e-12)
    # ln(0.13375/0.06875)/-ln(0.9) = 6.32 -> 7 liquidations
    assert cf.fb_liquidations_to_restore(0.935, 0.825, 0.05, 0.1) == 7


def test_every_fixed_bonus_health_matches_the_closed_form() -> None:
    """Not only H_3: every liquidation of the healing and toxic runs is taken at H_n."""
    for case, h0 in ((cf.HEALING, 0.935), (cf.TOXIC, 0.825)):
        liq = cf._liq(cf._fb_run(**case))
        hs = liq["hf_oracle"].to_numpy()
        n = np.arange(hs.size)
        assert hs.size >= 5
        assert hs == pytest.approx(cf.fb_health_after(n, h0, 0.825, 0.05, case["close_factor"]), rel=1e-9)


def test_static_share_formula() -> None:
    """(1/(1-d) - 1)/h: d = 0.2, h = 0.5 -> 0.25/0.5 = 0.5; clipped at 0 and 1."""
    assert cf.static_share_expected(0.2, 0.5) == pytest.approx(0.5)
    assert cf.static_share_expected(0.0, 0.5) == 0.0 and cf.static_share_expected(0.5, 0.5) == 1.0


def test_threshold_cascade_band_is_built_as_stated() -> None:
    """Selling the whole band moves the price by g times the band width (USD at F1)."""
    spec = cascadelab.load_spec(cf.threshold_cascade_spec(0.5))
    venue = spec.venues["ETH"]
    f1 = cf.CASCADE_P0 * (1 - cf.CASCADE_D0)
    impact_usd = 0.1 * f1 * (cf.CASCADE_N * f1) / venue.depth_usd
    assert impact_usd / (cf.CASCADE_W * cf.CASCADE_P0) == pytest.approx(0.5, rel=1e-12)
    thresholds = [p.debt / (0.55 * p.collateral["ETH"]) for p in spec.positions]
    assert max(thresholds) < cf.CASCADE_P0 and min(thresholds) > cf.CASCADE_P0 * (1 - cf.CASCADE_W)


def test_threshold_cascade_check_detects_a_wrong_impact() -> None:
    """The check can fail: the same band on a venue twice as deep (g = 0.25 in fact) ends at
    d0/(1 - 0.25) = 6.7%, far outside the g = 0.5 tolerance around 10%."""
    raw = cf.threshold_cascade_spec(0.5)
    raw["venues"]["ETH"]["depth_usd"] *= 2
    drop = cf._final_drop(cascadelab.run(raw))
    assert drop == pytest.approx(cf.CASCADE_D0 / 0.75, abs=2 * cf.CASCADE_W / (cf.CASCADE_N * 0.75))
    assert not Outcome(0.1, drop, Abs(2 * cf.CASCADE_W / (cf.CASCADE_N * 0.5))).passed


def test_auction_event_measurement_on_the_dss_curve() -> None:
    """The Maker checks' measurement, on prices built from abaci.sol's stairstep: YFI-A (buf 1.3,
    cut 0.99 per 90 s, cusp 0.4, tail 140 min), one step = 90 s, kick at step 2, no bids, reset when done."""
    osm, dt = 1400.0, 90.0
    px = np.full(200, np.nan)
    t0 = 2
    for t in range(t0, 200):
        k = (t - t0) % 92  # done (price/top < cusp) at k = 92: redo restarts the curve
        px[t] = 1.3 * osm * 0.99 ** k
    ev = cf.auction_events(px, dt, osm)
    assert ev["top"] == pytest.approx(1.3)
    assert ev["to_osm_min"] == pytest.approx(27 * 1.5)  # 1.3 x 0.99^27 = 0.991 <= 1 < 1.3 x 0.99^26
    assert ev["reset_min"] == pytest.approx(92 * 1.5)
    assert ev["before_reset"] == pytest.approx(1.3 * 0.99**91)
