"""Backends give bit-identical rows; a SIGKILLed sweep resumes without repeating or duplicating runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from cascadelab.sweep import Store, run_sweep
from cascadelab.sweep.backends import Dask, Processes
from tests.test_sweep import scenario_sweep, write_sweep

ROOT = Path(__file__).resolve().parents[1]
MECHS = ["fixed_bonus", {"name": "b12", "kind": "fixed_bonus", "params": {"bonus": 0.12, "close_factor": 1.0}}]


def _rows(out: Path) -> pd.DataFrame:
    """Stored runs without the one column that is not a result (wall time)."""
    return Store.open(out).read_results().drop(columns="wall_seconds")


def test_serial_processes_and_dask_give_identical_rows(tmp_path: Path) -> None:
    spec = scenario_sweep(tmp_path, n=4, replicates=2, mechanisms=MECHS)
    run_sweep(spec, tmp_path / "serial", progress=False)
    with Processes(2) as pool:
        run_sweep(spec, tmp_path / "processes", progress=False, backend=pool)
    with Dask.local(2) as cluster:
        assert cluster.workers == 2
        run_sweep(spec, tmp_path / "dask", progress=False, backend=cluster)
    serial = _rows(tmp_path / "serial")
    assert len(serial) == 4 * 4 * 2 * 2 and serial["error"].isna().all()
    assert serial["bad_debt_usd"].nunique() > 4  # the runs differ: the comparison below is not trivial
    pd.testing.assert_frame_equal(serial, _rows(tmp_path / "processes"))
    pd.testing.assert_frame_equal(serial, _rows(tmp_path / "dask"))
    assert len(Store.open(tmp_path / "dask").parts()) > 1  # results streamed in several parts


def test_a_sigkilled_sweep_resumes_without_repeats(tmp_path: Path) -> None:
    """kill -9 mid-sweep keeps whole parts only; --resume runs exactly the missing runs; same rows as a clean run."""
    spec = write_sweep(tmp_path / "slow.toml", function="cascadelab.sweep.testfns:slow_linear", method="latin",
                       n=100, chunk_size=5, outputs=["y"],
                       params=[{"path": p, "bounds": [0.0, 1.0]} for p in ("a", "b", "c")])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cascadelab", "sweep", str(spec), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((out / "runs").glob("part-*.parquet"))) < 4:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    store = Store.open(out)
    done = len(store.read_results())
    assert 20 <= done < 100 and done % 5 == 0  # whole chunks only

    resumed = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{100 - done} runs" in resumed.stdout and f"{done} already done" in resumed.stdout
    raw = store.read_results(dedupe=False)
    assert len(raw) == 100 == len(raw.drop_duplicates(["row", "replicate", "mechanism"]))

    run_sweep(spec, tmp_path / "clean", progress=False)
    pd.testing.assert_frame_equal(_rows(tmp_path / "clean"), _rows(out))
