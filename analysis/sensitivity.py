"""Sensitivity indices of a finished sweep, from its saved results only (``cascadelab analyze DIR``).

For every mechanism and output:

- the design's own method: Sobol' S1/ST/S2 with bootstrap confidence intervals (Saltelli
  design), Morris mu, mu*, sigma (mu* CI), or eFAST S1/ST; plus the given-data methods, delta
  (Borgonovo; with its S1) and PAWN, on any design;
- replicate noise separated from parameter effects: indices are computed on the mean over
  replicates (the conditional expectation of the output given the parameters), and
  ``noise_share`` = mean within-row variance / total run variance says how much of the
  run-to-run spread is seed noise; ``noise_share_of_mean`` is the part of the averaged
  output's variance still due to seeds (within variance / R over the variance of row means);
- failed runs: a row counts if at least one replicate succeeded (the mean is over those).
  Sobol' and Morris need whole blocks (a Saltelli block of D+2 or 2D+2 rows, a Morris
  trajectory of D+1 rows), so a block with a missing row is dropped whole and the indices use
  the remaining blocks; eFAST needs the complete curve, so missing rows are imputed with the
  mean of the others; the given-data methods just drop the rows.  Every count is reported.

``analyze_sweep`` also runs the paired mechanism comparison (analysis.comparison) and
``write_analysis`` saves every table as CSV and everything as one JSON.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cascadelab.sweep.store import Store

__all__ = ["SweepData", "analyze_sweep", "load_sweep_data", "noise_decomposition", "run_means",
           "sensitivity_indices", "write_analysis"]

GIVEN_DATA_MAX_ROWS = 512
"""delta is costly (kernel densities per bootstrap): it uses at most this many rows (a seeded subset)."""
GIVEN_DATA_MAX_RESAMPLES = 20
ANALYSIS_STREAM = 2**32 - 2
"""spawn_key of the analysis' own seeds (disjoint from runs and the sampler)."""


@dataclass
class SweepData:
    """A finished (or partial) sweep as saved: manifest, sample matrix, one row per run."""

    root: Path
    manifest: dict[str, Any]
    x: np.ndarray
    results: pd.DataFrame
    duplicates: int = 0

    @property
    def params(self) -> list[str]:
        return list(self.manifest["problem"]["names"])

    @property
    def columns(self) -> list[str]:
        """Result columns of the parameters (their paths)."""
        return [p["path"] for p in self.manifest["parameters"]]

    @property
    def outputs(self) -> list[str]:
        return list(self.manifest["outputs"])

    @property
    def mechanisms(self) -> list[str]:
        return [m["name"] for m in self.manifest["mechanisms"]]

    @property
    def sweep(self) -> dict[str, Any]:
        return self.manifest["sweep"]

    @property
    def n_rows(self) -> int:
        return int(self.manifest["n_rows"])

    @property
    def replicates(self) -> int:
        return int(self.manifest["replicates"])

    def seed(self, k: int) -> int:
        """The k-th analysis seed: a nonzero 32-bit int (SALib ignores a seed of 0)."""
        seq = np.random.SeedSequence(int(self.manifest["root_seed"]), spawn_key=(ANALYSIS_STREAM, k))
        return int(seq.generate_state(1)[0]) or 1


def load_sweep_data(root: str | Path) -> SweepData:
    store = Store.open(root)
    raw = store.read_results(dedupe=False)
    results = store.read_results()
    return SweepData(Path(root), store.manifest(), store.sample(), results, duplicates=len(raw) - len(results))


def run_means(data: SweepData, mechanism: str, output: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows x replicates) values of ``output`` under ``mechanism`` (NaN where a run failed or is missing)."""
    grid = np.full((data.n_rows, data.replicates), np.nan)
    res = data.results
    if output not in res.columns:
        return grid, grid
    sub = res[(res["mechanism"] == mechanism) & res["error"].isna()]
    grid[sub["row"].to_numpy(), sub["replicate"].to_numpy()] = sub[output].to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows with no successful replicate: NaN
        return grid, np.nanmean(grid, axis=1)


def noise_decomposition(grid: np.ndarray) -> dict[str, float]:
    """Seed noise vs parameter effects from a (rows x replicates) grid (module docstring)."""
    ok = np.isfinite(grid)
    vals = grid[ok]
    out = {"runs": int(ok.sum()), "total_var": float(np.var(vals, ddof=1)) if vals.size > 1 else math.nan,
           "within_var": math.nan, "noise_share": math.nan, "noise_share_of_mean": math.nan}
    counts = ok.sum(axis=1)
    multi = counts >= 2
    if grid.shape[1] < 2 or not multi.any():
        return out
    g = grid[multi]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        within = float(np.nanmean(np.nanvar(g, axis=1, ddof=1)))
        means = np.nanmean(g, axis=1)
    out["within_var"] = within
    total = out["total_var"]
    out["noise_share"] = within / total if total > 0 else 0.0
    var_means = float(np.var(means, ddof=1)) if means.size > 1 else math.nan
    r = float(np.mean(counts[multi]))
    out["noise_share_of_mean"] = min(1.0, within / r / var_means) if var_means > 0 else (0.0 if within == 0 else 1.0)
    return out


@contextlib.contextmanager
def _salib_guard(notes: list[str], where: str) -> Iterator[None]:
    """SALib's delta/PAWN/FAST seed the global numpy RNG and change warning filters: restore both; keep warnings."""
    state = np.random.get_state()  # noqa: NPY002 - restoring what SALib changes, not drawing from it
    fmt = warnings.formatwarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            np.random.set_state(state)  # noqa: NPY002
            warnings.formatwarning = fmt
    for msg in sorted({str(w.message).strip().splitlines()[0] for w in caught}):
        if "Bin Merge Notice" not in msg:  # SALib's delta reports how it binned: information, not a problem
            notes.append(f"{where}: {msg}")


def _blocks_complete(y: np.ndarray, block: int) -> np.ndarray:
    """Row mask keeping only whole blocks without a missing value."""
    n_blocks = y.size // block
    ok = np.isfinite(y[: n_blocks * block]).reshape(n_blocks, block).all(axis=1)
    return np.repeat(ok, block)


def _rows(table: list[dict[str, Any]], method: str, names: list[str], result: dict[str, Any],
          pairs: list[tuple[str, str | None]]) -> None:
    for index, conf in pairs:
        values = np.asarray(result[index], dtype=float)
        cis = np.asarray(result[conf], dtype=float) if conf else np.full(values.shape, np.nan)
        for name, v, c in zip(names, values, cis, strict=True):
            table.append({"method": method, "parameter": name, "index": index, "value": float(v), "conf": float(c)})


def _method_indices(data: SweepData, y: np.ndarray, x: np.ndarray, notes: list[str], where: str
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The design's own method on row means ``y`` (NaN = no result): index rows, S2 rows, failure treatment."""
    from SALib.analyze import fast, morris, sobol

    sw = data.sweep
    method = data.manifest["method"]
    problem = {k: data.manifest["problem"][k] for k in ("num_vars", "names", "bounds", "dists")}
    names = data.params
    block = int(data.manifest["block_size"])
    rows: list[dict[str, Any]] = []
    s2: list[dict[str, Any]] = []
    missing = int((~np.isfinite(y)).sum())
    info: dict[str, Any] = {"rows_missing": missing, "treatment": "none needed" if missing == 0 else ""}
    resamples, conf = int(sw["num_resamples"]), float(sw["conf_level"])
    if method in ("sobol", "morris"):
        keep = _blocks_complete(y, block)
        n_blocks, used = y.size // block, int(keep.sum()) // block
        info.update(blocks=n_blocks, blocks_used=used)
        if missing:
            info["treatment"] = f"dropped {n_blocks - used} of {n_blocks} whole blocks of {block} rows with a missing row"
        yk, xk = y[keep], x[keep]
        if used < 2:
            notes.append(f"{where}: fewer than 2 complete blocks; no {method} indices")
            return rows, s2, info
        if np.ptp(yk) == 0:
            notes.append(f"{where}: constant output; {method} indices are undefined (reported as NaN)")
            _constant(rows, method, names, ("S1", "ST") if method == "sobol" else ("mu", "mu_star", "sigma"))
            return rows, s2, info
        with _salib_guard(notes, f"{where} {method}"):
            if method == "sobol":
                res = sobol.analyze(problem, yk, calc_second_order=bool(sw["calc_second_order"]),
                                    num_resamples=resamples, conf_level=conf, seed=data.seed(1))
            else:
                res = morris.analyze(problem, xk, yk, num_resamples=resamples, conf_level=conf,
                                     num_levels=int(sw["levels"]), seed=data.seed(2))
        if method == "sobol":
            _rows(rows, "sobol", names, res, [("S1", "S1_conf"), ("ST", "ST_conf")])
            if sw["calc_second_order"]:
                for i, a in enumerate(names):
                    for j in range(i + 1, len(names)):
                        s2.append({"parameter": a, "other": names[j], "value": float(res["S2"][i, j]),
                                   "conf": float(res["S2_conf"][i, j])})
        else:
            _rows(rows, "morris", names, res, [("mu", None), ("mu_star", "mu_star_conf"), ("sigma", None)])
    elif method == "fast":
        yk = y.copy()
        if missing:
            yk[~np.isfinite(yk)] = np.nanmean(yk)
            info["treatment"] = f"imputed {missing} missing rows with the mean of the others (eFAST needs every row)"
        if not np.isfinite(yk).any() or np.ptp(yk) == 0:
            notes.append(f"{where}: constant or empty output; fast indices undefined")
            _constant(rows, "fast", names, ("S1", "ST"))
            return rows, s2, info
        with _salib_guard(notes, f"{where} fast"):
            res = fast.analyze(problem, yk, M=int(sw["fast_m"]), num_resamples=resamples, conf_level=conf,
                               seed=data.seed(3))
        _rows(rows, "fast", names, res, [("S1", "S1_conf"), ("ST", "ST_conf")])
    elif missing:
        info["treatment"] = f"dropped {missing} rows without a result"
    return rows, s2, info


def _constant(rows: list[dict[str, Any]], method: str, names: list[str], indices: tuple[str, ...]) -> None:
    for index in indices:
        for name in names:
            rows.append({"method": method, "parameter": name, "index": index, "value": math.nan, "conf": math.nan})


def _given_data(data: SweepData, y: np.ndarray, x: np.ndarray, notes: list[str], where: str, k: int
                ) -> list[dict[str, Any]]:
    """delta (with its S1) and PAWN on the rows that have a result."""
    from SALib.analyze import delta, pawn

    ok = np.isfinite(y)
    yk, xk = y[ok], x[ok]
    names = data.params
    rows: list[dict[str, Any]] = []
    if yk.size < 20 or np.ptp(yk) == 0:
        notes.append(f"{where}: {'constant output' if yk.size >= 20 else 'fewer than 20 rows'}; no delta/PAWN")
        return rows
    problem = {k2: data.manifest["problem"][k2] for k2 in ("num_vars", "names", "bounds", "dists")}
    with _salib_guard(notes, f"{where} pawn"):
        res = pawn.analyze(problem, xk, yk, S=min(10, max(2, yk.size // 20)), seed=data.seed(100 + k))
    _rows(rows, "pawn", names, res, [("median", None), ("maximum", None)])
    if yk.size > GIVEN_DATA_MAX_ROWS:
        pick = np.sort(np.random.default_rng(data.seed(200 + k)).choice(yk.size, GIVEN_DATA_MAX_ROWS, replace=False))
        yk, xk = yk[pick], xk[pick]
    try:
        with _salib_guard(notes, f"{where} delta"):
            res = delta.analyze(problem, xk, yk,
                                num_resamples=min(int(data.sweep["num_resamples"]), GIVEN_DATA_MAX_RESAMPLES),
                                conf_level=float(data.sweep["conf_level"]), seed=data.seed(300 + k))
    except (ValueError, np.linalg.LinAlgError) as exc:  # delta's kernel density fails on degenerate outputs
        notes.append(f"{where}: delta not computed ({str(exc).splitlines()[0]})")
        return rows
    if "delta_raw" in res:
        res["delta"], res["delta_conf"] = res["delta_raw"], res["delta_raw_conf"]
    _rows(rows, "delta", names, res, [("delta", "delta_conf"), ("S1", "S1_conf")])
    return rows


def sensitivity_indices(data: SweepData, given_data: bool = True) -> dict[str, Any]:
    """Indices, S2, noise and failure tables for every (mechanism, output); see the module docstring."""
    indices: list[dict[str, Any]] = []
    s2: list[dict[str, Any]] = []
    noise: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    notes: list[str] = []
    k = 0
    for mech in data.mechanisms:
        res = data.results[data.results["mechanism"] == mech]
        failed = int(res["error"].notna().sum())
        for out in data.outputs:
            where = f"{mech}/{out}"
            grid, y = run_means(data, mech, out)
            rows, s2_rows, info = _method_indices(data, y, data.x, notes, where)
            if given_data:
                rows += _given_data(data, y, data.x, notes, where, k)
            k += 1
            indices += [{"mechanism": mech, "output": out, **r} for r in rows]
            s2 += [{"mechanism": mech, "output": out, **r} for r in s2_rows]
            noise.append({"mechanism": mech, "output": out, **noise_decomposition(grid)})
            failures.append({"mechanism": mech, "output": out, "runs_expected": data.n_rows * data.replicates,
                             "runs_stored": len(res), "runs_failed": failed,
                             "runs_used": int(np.isfinite(grid).sum()), **info})
    if data.replicates < 2:
        notes.append("replicates = 1: seed noise cannot be separated from parameter effects (noise columns NaN)")
    return {"indices": pd.DataFrame(indices), "s2": pd.DataFrame(s2), "noise": pd.DataFrame(noise),
            "failures": pd.DataFrame(failures), "notes": notes}


@dataclass
class SweepAnalysis:
    """Everything ``cascadelab analyze`` computes, as tables plus plain-language lines."""

    data: SweepData
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    answer: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "sweep": str(self.data.root), "method": self.data.manifest["method"],
            "n_rows": self.data.n_rows, "replicates": self.data.replicates, "mechanisms": self.data.mechanisms,
            "outputs": self.data.outputs, "runs": len(self.data.results),
            "runs_expected": int(self.data.manifest["n_runs"]), "duplicates_dropped": self.data.duplicates,
            "errors": self.errors, "answer": self.answer, "notes": self.notes,
            "tables": {name: json.loads(t.to_json(orient="records")) for name, t in self.tables.items()},
        }


def analyze_sweep(root: str | Path, *, given_data: bool = True,
                  progress: Callable[[str], None] | None = None) -> SweepAnalysis:
    """Indices, noise, failures and the paired mechanism comparison of the sweep in ``root``."""
    from analysis.comparison import compare_mechanisms

    data = load_sweep_data(root)
    if progress:
        progress(f"{len(data.results)} runs of {data.manifest['n_runs']}")
    sens = sensitivity_indices(data, given_data=given_data)
    comp = compare_mechanisms(data)
    errors = data.results.loc[data.results["error"].notna(), "error"].str.split(":").str[0].value_counts()
    out = SweepAnalysis(data, notes=sens.pop("notes") + comp.pop("notes"), answer=comp.pop("answer"),
                        errors={str(k): int(v) for k, v in errors.items()})
    n_failed = int(data.results["error"].notna().sum())
    stored = len(data.results)
    out.answer.insert(0, f"{stored} of {data.manifest['n_runs']} runs stored; {n_failed} failed "
                         f"({', '.join(f'{v} {k}' for k, v in out.errors.items()) or 'none'}). Failed runs are "
                         "left out: see failures.csv for how each design treats them.")
    out.tables.update({k: v for k, v in sens.items()})
    out.tables.update(comp)
    return out


def write_analysis(analysis: SweepAnalysis, out_dir: str | Path | None = None) -> Path:
    """Every table as CSV plus analysis.json in ``DIR/analysis`` (or ``out_dir``)."""
    target = Path(out_dir) if out_dir else analysis.data.root / "analysis"
    target.mkdir(parents=True, exist_ok=True)
    for name, table in analysis.tables.items():
        table.to_csv(target / f"{name}.csv", index=False)
    (target / "analysis.json").write_text(json.dumps(analysis.to_json_dict(), indent=1, default=str))
    (target / "answer.txt").write_text("\n".join(analysis.answer) + "\n")
    return target
