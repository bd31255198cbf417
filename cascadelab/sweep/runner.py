"""Run a sweep: plan, store, chunk, execute on a backend, write results as they finish.

The driver holds the sample matrix, the set of finished keys and at most ``window`` chunks
in flight; results go to disk chunk by chunk and are never accumulated, so memory stays
bounded whatever N is.  Chunks adapt to the runs' length: the first ones are single runs,
then each chunk aims at ``TARGET_CHUNK_SECONDS`` of work (never more than a fair share of
what is left), so short runs are not dominated by scheduling and writing overhead while a
kill loses little.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascadelab.sweep.backends import Backend, make_backend
from cascadelab.sweep.plan import Plan, build_plan
from cascadelab.sweep.spec import SweepConfig, load_sweep
from cascadelab.sweep.store import Store
from cascadelab.sweep.work import Task, run_chunk

__all__ = ["SweepSummary", "run_sweep", "plan_sweep"]

TARGET_CHUNK_SECONDS = 1.0
MAX_CHUNK = 512


@dataclass(frozen=True)
class SweepSummary:
    """What one invocation did."""

    out: Path
    total: int
    skipped: int
    ran: int
    failed: int
    seconds: float
    backend: str
    workers: int

    @property
    def rate(self) -> float:
        return self.ran / self.seconds if self.seconds > 0 else math.nan


class ChunkSizer:
    """Chunk size from the observed time per run (see the module docstring)."""

    def __init__(self, workers: int, fixed: int = 0) -> None:
        self.workers = workers
        self.fixed = fixed
        self.per_run: float | None = None

    def observe(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        t = sum(r["wall_seconds"] for r in records) / len(records)
        self.per_run = t if self.per_run is None else 0.7 * self.per_run + 0.3 * t

    def size(self, remaining: int) -> int:
        if self.fixed:
            return self.fixed
        if self.per_run is None:
            return 1
        share = max(1, math.ceil(remaining / (2 * self.workers)))
        want = max(1, round(TARGET_CHUNK_SECONDS / max(self.per_run, 1e-6)))
        return int(min(want, share, MAX_CHUNK))


def _chunks(plan: Plan, finished: set[tuple[int, int, str]], sizer: ChunkSizer, todo: int) -> Iterator[list[Task]]:
    names = plan.mechanism_names
    x = plan.x
    chunk: list[Task] = []
    target = sizer.size(todo)
    for row, rep, m in plan.run_keys():
        if (row, rep, names[m]) in finished:
            continue
        chunk.append((row, rep, m, tuple(float(v) for v in x[row])))
        if len(chunk) >= target:
            todo -= len(chunk)
            yield chunk
            chunk = []
            target = sizer.size(todo)
    if chunk:
        yield chunk


def plan_sweep(spec: str | Path | Mapping[str, Any] | SweepConfig, base: Path | None = None) -> Plan:
    """Load, validate and sample a sweep spec (a path, a dict or a SweepConfig)."""
    if isinstance(spec, SweepConfig):
        cfg, root = spec, base or Path.cwd()
    else:
        cfg, root = load_sweep(spec)
        root = base or root
    return build_plan(cfg, root)


def run_sweep(spec: str | Path | Mapping[str, Any] | SweepConfig | Plan, out: str | Path, *, workers: int = 1,
              scheduler: str | None = None, resume: bool = False, progress: bool = True,
              backend: Backend | None = None) -> SweepSummary:
    """Run (or with ``resume``, finish) a sweep into ``out``; see DESIGN.md section 9.

    ``backend`` overrides ``workers``/``scheduler`` with a ready Backend (which the caller closes).
    """
    from tqdm.auto import tqdm

    plan = spec if isinstance(spec, Plan) else plan_sweep(spec)
    study = plan.manifest()
    store = Store.resume(out, study, plan.x) if resume else Store.create(out, study, plan.x)
    finished = store.finished_keys()
    total = plan.n_runs
    todo = total - len(finished)
    own = backend is None
    be = make_backend(workers, scheduler) if own else backend
    sizer = ChunkSizer(be.workers, plan.config.chunk_size)
    window = 1 if be.workers <= 1 and be.name == "serial" else 2 * be.workers
    ran = failed = 0
    start = time.perf_counter()
    bar = tqdm(total=total, initial=len(finished), unit="run", disable=not progress, smoothing=0.05,
               desc=f"sweep ({be.name}, {be.workers} worker{'s' if be.workers != 1 else ''})", dynamic_ncols=True)
    try:
        for records in be.imap_unordered(run_chunk, plan.study, _chunks(plan, finished, sizer, todo), window):
            store.write_part(records)
            sizer.observe(records)
            n_bad = sum(r["error"] is not None for r in records)
            ran += len(records)
            failed += n_bad
            bar.update(len(records))
            if n_bad:
                bar.set_postfix(failed=failed)
    finally:
        bar.close()
        if own:
            be.close()
    return SweepSummary(out=Path(out), total=total, skipped=len(finished), ran=ran, failed=failed,
                        seconds=time.perf_counter() - start, backend=be.name, workers=be.workers)
