"""A sweep's results on disk: a manifest, the sample matrix and Parquet parts written as runs finish.

Layout of ``DIR``::

    manifest.json     the resolved study (sweep spec, scenario, SALib problem, mechanisms, root seed),
                      package versions, git commit, the sample file's hash and a fingerprint
    sample.npy        the design's sample matrix (rows x parameters)
    runs/part-*.parquet   one file per finished chunk, one row per run: row, replicate, mechanism,
                      seed, the applied parameter values, every metric, error, warnings, wall_seconds

Every file is written to a temporary name and renamed into place, so a killed sweep (even
SIGKILL) leaves only whole parts; ``finished_keys`` tells a resumed sweep what to skip, and
``read_results`` drops duplicate keys as a guard (none are written).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["KEY", "Store", "StoreError", "package_versions", "git_commit"]

FORMAT = "cascadelab-sweep/1"
KEY = ["row", "replicate", "mechanism"]
"""Columns that identify a run."""
TEXT_COLUMNS = ("mechanism", "seed", "error", "warnings")
MANIFEST, SAMPLE, RUNS = "manifest.json", "sample.npy", "runs"
OPERATIONAL = ("chunk_size", "num_resamples", "conf_level", "objectives")
"""Sweep keys that change how a study is run or analysed, not what it computes (free to change on --resume)."""
PACKAGES = ("cascadelab", "numpy", "scipy", "pandas", "pyarrow", "SALib", "Mesa", "dask", "distributed", "tqdm")


class StoreError(Exception):
    """A results directory that cannot be used as asked (exists, differs, missing)."""


def package_versions() -> dict[str, str | None]:
    import platform

    import cascadelab

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        if name == "cascadelab":  # the running source's own version, even if the installed metadata lags
            out[name] = cascadelab.__version__
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> dict[str, Any] | None:
    """The commit of the cascadelab source tree (and whether it had uncommitted changes), if it is a git checkout."""
    src = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(dirty)}


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    write(tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    """A results directory (module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs = self.root / RUNS
        self._session = uuid.uuid4().hex[:8]
        self._seq = 0

    # ------------------------------------------------------------------ creating / opening

    @classmethod
    def create(cls, root: str | Path, study: Mapping[str, Any], x: np.ndarray) -> Store:
        """A new results directory for ``study`` (a Plan's manifest) with sample matrix ``x``."""
        store = cls(root)
        if (store.root / MANIFEST).exists() or (store.runs.exists() and any(store.runs.iterdir())):
            raise StoreError(f"{store.root} already holds sweep results; use --resume to finish them "
                             f"or choose a new --out directory")
        if store.root.exists() and not store.root.is_dir():
            raise StoreError(f"{store.root} exists and is not a directory")
        store.runs.mkdir(parents=True, exist_ok=True)
        buf = np.ascontiguousarray(x, dtype=np.float64)
        _atomic_write(store.root / SAMPLE, lambda p: _save_npy(p, buf))
        manifest = _identity(study, buf)
        manifest.update(format=FORMAT, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        versions=package_versions(), git=git_commit())
        store._write_manifest(manifest)
        return store

    @classmethod
    def open(cls, root: str | Path) -> Store:
        store = cls(root)
        if not (store.root / MANIFEST).is_file():
            raise StoreError(f"{store.root} holds no sweep (no {MANIFEST})")
        return store

    @classmethod
    def resume(cls, root: str | Path, study: Mapping[str, Any], x: np.ndarray) -> Store:
        """Reopen ``root`` to finish the same study; refuses one whose spec, scenario or sample differ, or
        whose runs another cascadelab version made (the two engines' results need not agree)."""
        if not (Path(root) / MANIFEST).is_file():
            return cls.create(root, study, x)
        store = cls.open(root)
        if _identity(study, x)["fingerprint"] != store.manifest().get("fingerprint"):
            raise StoreError(f"{store.root} holds a different sweep (its spec, scenario or sample differ "
                             f"from this one); resume it with the same spec or choose a new --out directory")
        made_by, running = store.manifest().get("versions", {}).get("cascadelab"), package_versions()["cascadelab"]
        if made_by != running:
            raise StoreError(f"{store.root} holds runs made by cascadelab {made_by}, and this is {running}: "
                             f"finish it with {made_by} or choose a new --out directory")
        for tmp in store.runs.glob(".*.tmp"):
            tmp.unlink()  # a part that was being written when the sweep was killed
        return store

    def _write_manifest(self, manifest: Mapping[str, Any]) -> None:
        text = json.dumps(manifest, indent=1, default=str)
        _atomic_write(self.root / MANIFEST, lambda p: p.write_text(text))

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.root / MANIFEST).read_text())

    def sample(self) -> np.ndarray:
        return np.load(self.root / SAMPLE, allow_pickle=False)

    # ------------------------------------------------------------------ results

    def write_part(self, records: Iterable[Mapping[str, Any]]) -> Path | None:
        """Append finished runs as one Parquet part (atomically)."""
        frame = pd.DataFrame.from_records(list(records))
        if frame.empty:
            return None
        fields = []
        for col in frame.columns:
            if col in ("row", "replicate"):
                fields.append(pa.field(col, pa.int64()))
            elif col in TEXT_COLUMNS:
                fields.append(pa.field(col, pa.string()))
            else:
                fields.append(pa.field(col, pa.float64()))
        table = pa.Table.from_pandas(frame, schema=pa.schema(fields), preserve_index=False)
        self._seq += 1
        path = self.runs / f"part-{self._session}-{self._seq:06d}.parquet"
        _atomic_write(path, lambda p: pq.write_table(table, p))
        return path

    def parts(self) -> list[Path]:
        return sorted(self.runs.glob("part-*.parquet"))

    def finished_keys(self) -> set[tuple[int, int, str]]:
        """(row, replicate, mechanism) of every stored run, failed ones included (they are not repeated)."""
        done: set[tuple[int, int, str]] = set()
        for part in self.parts():
            t = pq.read_table(part, columns=KEY)
            done.update(zip(t["row"].to_pylist(), t["replicate"].to_pylist(), t["mechanism"].to_pylist(),
                            strict=True))
        return done

    def read_results(self, *, dedupe: bool = True) -> pd.DataFrame:
        """Every stored run, one row each, in (row, replicate, mechanism) order of the study."""
        frames = [pq.read_table(p).to_pandas() for p in self.parts()]
        if not frames:
            return pd.DataFrame(columns=[*KEY, "seed", "error"])
        frame = pd.concat(frames, ignore_index=True)
        if dedupe:
            frame = frame.drop_duplicates(subset=KEY, keep="first")
        order = {m["name"]: i for i, m in enumerate(self.manifest().get("mechanisms", []))}
        frame = frame.assign(_m=frame["mechanism"].map(order)).sort_values(["row", "replicate", "_m"])
        return frame.drop(columns="_m").reset_index(drop=True)


def _identity(study: Mapping[str, Any], x: np.ndarray) -> dict[str, Any]:
    """The study with its sample's hash and a fingerprint of both (what --resume must match)."""
    buf = np.ascontiguousarray(x, dtype=np.float64)
    out = dict(study)
    out["sample"] = {"file": SAMPLE, "shape": list(buf.shape), "sha256": _sha256(buf.tobytes())}
    ident = {k: v for k, v in out.items() if k not in ("scenario_path", "objectives")}
    ident["sweep"] = {k: v for k, v in ident.get("sweep", {}).items() if k not in OPERATIONAL}
    out["fingerprint"] = _sha256(_canonical(ident).encode())
    return out


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
