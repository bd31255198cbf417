"""Spec loading: the TOML contract, overrides, validation messages and the CLI's exit code 2."""

from __future__ import annotations

import math

import pytest

from cascadelab.cli import main
from cascadelab.spec import DEFAULT_SPEC_PATH, SpecError, load_spec, spec_to_dict
from tests.conftest import single_position_spec


def test_default_spec_loads_with_two_protocols_sharing_eth() -> None:
    """The built-in scenario has two protocols on one ETH venue and thousands of borrowers."""
    spec = load_spec()
    assert spec.protocol_names == ["lender_a", "lender_b"]
    assert list(spec.venues) == ["ETH"]
    assert sum(p.count for p in spec.populations.values()) >= 5000


def test_round_trip_through_plain_data() -> None:
    """The resolved spec as plain data loads back to an equal spec (provenance)."""
    spec = load_spec(DEFAULT_SPEC_PATH)
    assert load_spec(spec_to_dict(spec)) == spec


def test_override_by_dotted_path_and_list_entry_by_name() -> None:
    """--set reaches inline tables and [[positions]] entries by name."""
    raw = single_position_spec([[0, 2000.0], [10, 1500.0]])
    spec = load_spec(raw, ["protocols.lender.mechanism.bonus=0.08", "positions.alice.debt=9000"])
    assert spec.protocols["lender"].mechanism.bonus == 0.08
    assert spec.positions[0].debt == 9000.0


@pytest.mark.parametrize(
    ("override", "path", "fragment"),
    [
        ({"protocols.lender.mechanism.bonus": 1.5}, "protocols.lender.mechanism.bonus", "allowed [0, 1)"),
        ({"protocols.lender.mechanism.bonsu": 0.1}, "protocols.lender.mechanism.bonsu", "unknown key"),
        ({"run.steps": "many"}, "run.steps", "expected an integer"),
        ({"venues.ETH.kind": "orderbook"}, "venues.ETH.kind", "one of 'constant_product'"),
        ({"protocols.lender.mechanism.kind": "magic"}, "protocols.lender.mechanism.kind", "unknown mechanism"),
        ({"positions.alice.protocol": "nope"}, "positions.alice.protocol", "unknown protocol"),
        ({"correlation.ETH.ETH": 2.0}, "correlation.ETH.ETH", "allowed [-1, 1]"),
        ({"liquidators.strategy": "psychic"}, "liquidators.strategy", "unknown strategy"),
    ],
)
def test_bad_values_name_the_key_path_and_what_is_allowed(override: dict, path: str, fragment: str) -> None:
    """Every validation error carries the full key path and the allowed values."""
    raw = single_position_spec([[0, 2000.0], [10, 1500.0]])
    with pytest.raises(SpecError) as err:
        load_spec(raw, override)
    assert err.value.path == path
    assert fragment in str(err.value)


def test_missing_file_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_spec("does/not/exist.toml")


def test_inf_is_accepted_and_nan_rejected() -> None:
    raw = single_position_spec([[0, 2000.0], [10, 1500.0]])
    assert math.isinf(load_spec(raw, {"arbitrageurs.capital_usd_per_step": math.inf}).arbitrageurs.capital_usd_per_step)
    with pytest.raises(SpecError, match="NaN"):
        load_spec(raw, {"venues.ETH.fee": math.nan})


def test_cli_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Bad input: exit code 2 and one line on stderr, no traceback."""
    code = main(["run", "--set", "protocols.lender_a.mechanism.bonus=1.5"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "protocols.lender_a.mechanism.bonus" in err and "[0, 1)" in err
    assert main(["run", "missing.toml"]) == 2


def test_cli_debug_shows_the_traceback() -> None:
    with pytest.raises(SpecError):
        main(["run", "--debug", "--set", "run.steps=0"])


def test_keeper_groups_inherit_the_top_level_keys() -> None:
    """A group sets only what differs; every other key comes from [liquidators]."""
    raw = single_position_spec([[0, 2000.0], [10, 1500.0]])
    raw["liquidators"].update(capital_usd=5e6, groups={"congested": {"count": 3, "max_gas_gwei": 100.0}})
    liq = load_spec(raw).liquidators
    congested = liq.groups["congested"]
    assert congested.count == 3 and congested.max_gas_gwei == 100.0 and congested.capital_usd == 5e6
    assert liq.total_count == 4
    assert [name for name, _ in liq.all_groups()] == ["main", "congested"]
    assert load_spec(spec_to_dict(load_spec(raw))).liquidators == liq


def test_keeper_group_errors_name_the_group() -> None:
    raw = single_position_spec([[0, 2000.0], [10, 1500.0]])
    raw["liquidators"]["groups"] = {"slow": {"strategy": "telepathy"}}
    with pytest.raises(SpecError) as err:
        load_spec(raw)
    assert err.value.path == "liquidators.groups.slow.strategy"
