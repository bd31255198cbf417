"""The benchmark tools that back issue 8's numbers: they must measure what they claim and detect what they check.

``benchmarks/sobol_study.py`` times a whole study and counts its runs; ``check_identical.py
--store`` re-runs runs of a stored sweep and must notice a stored output that differs.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab_sample  # noqa: E402
import check_identical  # noqa: E402
import sobol_study  # noqa: E402
from test_sweep import TROUGH as TROUGH_PARAM  # noqa: E402
from test_sweep import scenario_sweep  # noqa: E402

from cascadelab.sweep import run_sweep  # noqa: E402


def _write_toml(path: Path, sweep: dict) -> Path:
    """A sweep dict as TOML (JSON scalars and arrays are TOML values)."""
    lines = ["[sweep]", *(f"{k} = {json.dumps(v)}" for k, v in sweep["sweep"].items() if k != "params")]
    for p in sweep["sweep"]["params"]:
        lines += ["[[sweep.params]]", *(f"{k} = {json.dumps(v)}" for k, v in p.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sobol_study_times_every_run_and_keeps_trials_apart(tmp_path: Path) -> None:
    sweep = _write_toml(tmp_path / "study.toml", scenario_sweep(tmp_path))
    out = tmp_path / "timings.json"
    for n in (2, 4):
        assert sobol_study.main([str(sweep), "--n", str(n), "--workers", "1", "--no-progress", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert sorted(saved) == [f"{sweep.as_posix()} n=2", f"{sweep.as_posix()} n=4"]  # a trial does not overwrite
    row = saved[f"{sweep.as_posix()} n=4"]
    assert row["runs"] == 4 * (2 + 2) and row["failed"] == 0  # Sobol' without second order: N (k + 2)
    assert 0 < row["run_seconds"]["median"] <= row["run_seconds"]["max"] and 0 < row["busy_fraction"] <= 1.05
    assert row["runs_per_second"] == pytest.approx(row["runs"] / (60 * row["elapsed_minutes"]))


def test_sobol_study_rejects_a_file_that_is_not_a_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text("[run]\nsteps = 10\n")
    with pytest.raises(SystemExit) as exc:
        sobol_study.main([str(scenario), "--out", str(tmp_path / "t.json")])
    assert exc.value.code == 2 and "not a sweep spec" in capsys.readouterr().err


def test_store_check_passes_on_the_same_engine_and_catches_a_changed_output(tmp_path: Path) -> None:
    out = tmp_path / "stored"
    run_sweep(scenario_sweep(tmp_path, n=2), out, progress=False)
    assert check_identical.compare_store(out, runs=8) == 0
    part = sorted((out / "runs").glob("*.parquet"))[0]
    frame = pq.read_table(part).to_pandas()
    frame.loc[:, "liquidated_usd"] = frame["liquidated_usd"] * (1 + 1e-15) + 1e-9  # the last bits only
    pq.write_table(pq.read_table(part).from_pandas(frame, schema=pq.read_schema(part), preserve_index=False), part)
    assert check_identical.compare_store(out, runs=8) == len(pd.read_parquet(part))


def test_ab_sample_times_both_checkouts_and_refuses_a_directory_without_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """This checkout against itself: both sides time the same sample and the ratio is theirs."""
    sweep = _write_toml(tmp_path / "study.toml", scenario_sweep(tmp_path))
    repo = Path(__file__).resolve().parents[1]
    assert ab_sample.main([str(repo), str(sweep), "--runs", "2", "--repeat", "1", "--rounds", "1"]) == 0
    line = re.search(r"base ([\d.]+) ms\s+new ([\d.]+) ms a run\s+ratio new/base ([\d.]+)", capsys.readouterr().out)
    assert line is not None
    base, new, ratio = (float(x) for x in line.groups())
    assert base > 0 and new > 0 and 0 < ratio < 10
    with pytest.raises(SystemExit) as exc:
        ab_sample.main([str(tmp_path), str(sweep)])
    assert exc.value.code == 2 and "no cascadelab checkout" in capsys.readouterr().err
    # the Mesa comparison's scenario instead of a sweep; one of the two, not both or neither
    assert ab_sample.main([str(repo), "--reference", "200", "--repeat", "1", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "reference scenario at 200 positions" in out and re.search(r"ratio new/base [\d.]+", out)
    for wrong in ([str(repo)], [str(repo), str(sweep), "--reference", "200"]):
        with pytest.raises(SystemExit) as exc:
            ab_sample.main(wrong)
        assert exc.value.code == 2 and "a sweep file or --reference" in capsys.readouterr().err


def test_profile_run_splits_every_step_of_every_run_into_one_kind() -> None:
    """``profile_run.py --quiet-steps``: quiet + stuck + filling steps = all steps of the runs."""
    import profile_run
    from reference_mesa import reference_spec

    import cascadelab

    spec = cascadelab.load_spec(reference_spec(60, 200, crash=[[0, 2000.0], [100, 900.0], [200, 1000.0]]))
    line = profile_run.split_quiet_steps([spec, spec])
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (quiet|stuck|with fills) steps", line)}
    assert sum(counts.values()) == 2 * 200 and counts["with fills"] > 0 and counts["quiet"] > 0
    assert line.startswith("2 run(s): ")
    sample = profile_run.sweep_rows(Path(__file__).resolve().parents[1] / "experiments" / "sweeps"
                                    / "sensitivity_reference_crash.toml", 3)
    assert len(sample) == 3 and len({s.protocols["lender"].mechanism.bonus for s in sample}) == 3


@pytest.mark.parametrize(("capital", "stopped"), [([1.0, 2.0], True), ([1e12, 2e12], False)], ids=["poor", "rich"])
def test_profile_run_slow_runs_counts_the_rounds_stopped_by_capital(tmp_path: Path, capital: list[float],
                                                                    stopped: bool) -> None:
    """``profile_run.py --slow-runs``: keepers with 1-2 USD are stopped by capital in every round with a
    profitable offer; keepers with 1e12 USD never are; one correlation line per input."""
    import profile_run

    keeper_capital = {"path": "liquidators.capital_usd", "bounds": capital}
    sweep = _write_toml(tmp_path / "study.toml", scenario_sweep(tmp_path, n=2, params=[TROUGH_PARAM, keeper_capital]))
    report = profile_run.slow_runs(sweep, 3)
    most = int(re.search(r"capital-stopped first-keeper rounds a run: median \d+, max (\d+)", report).group(1))
    assert (most > 10) if stopped else most == 0
    assert report.startswith("3 runs: ") and report.count("\n  with ") == 2
