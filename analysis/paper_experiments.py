"""The experiments behind the report: read experiments/paper.toml, run or reuse each result.

A *run* experiment is one scenario (optionally with its no-feedback counterfactual and the
liquidation-at-risk curves of its book at t = 0), saved with ``RunResult.save``; a *sweep*
experiment is a sweep spec run with the sweep runner and analysed with ``cascadelab analyze``'s
code; ``validation.json`` is the output of every registered validation check.  Results live in
``paper/results/<budget>/`` and carry a fingerprint of everything that determines them (the
resolved spec, seed, flags and budget); a result whose fingerprint matches is reused, so a
second build re-simulates nothing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cascadelab.schema import SpecError, from_dict, param, to_dict
from cascadelab.spec import load_spec, read_toml, spec_to_dict

BUDGETS = ("full", "quick", "test")
"""Budget names: the default, the few-minutes one, and the tiny one the tests build with."""


@dataclass(frozen=True)
class RunExperiment:
    """One scenario run of the report."""

    scenario: str = param(doc="scenario TOML relative to the repository root, or 'default' (built-in)")
    counterfactual: bool = param(False, doc="also run the same draws without price impact")
    lar: bool = param(False, doc="liquidation-at-risk curves of the book at t = 0")


@dataclass(frozen=True)
class SweepExperiment:
    """One sensitivity sweep of the report."""

    spec: str = param(doc="sweep TOML relative to the repository root")


@dataclass(frozen=True)
class SweepBudget:
    """How a budget shrinks a sweep: another N, extra scenario overrides."""

    n: int = param(0, lo=0, doc="design size (0: the sweep spec's own)")
    overrides: dict[str, Any] = param(default_factory=dict, doc="merged into the sweep's scenario overrides")


@dataclass(frozen=True)
class Budget:
    """Per-experiment changes of one budget (empty: everything as specified)."""

    runs: dict[str, dict[str, Any]] = param(default_factory=dict, doc="dotted overrides per run experiment")
    sweeps: dict[str, SweepBudget] = param(default_factory=dict, doc="per sweep experiment")


@dataclass(frozen=True)
class PaperConfig:
    """experiments/paper.toml."""

    runs: dict[str, RunExperiment] = param(default_factory=dict)
    sweeps: dict[str, SweepExperiment] = param(default_factory=dict)
    budgets: dict[str, Budget] = param(default_factory=dict)

    def check(self, path: str) -> None:
        for name in BUDGETS:
            if name not in self.budgets:
                raise SpecError("budgets", f"budget {name!r} is missing; define {', '.join(BUDGETS)}")
        for bname, budget in self.budgets.items():
            for kind, names, known in (("runs", budget.runs, self.runs), ("sweeps", budget.sweeps, self.sweeps)):
                for n in names:
                    if n not in known:
                        raise SpecError(f"budgets.{bname}.{kind}.{n}", f"no {kind[:-1]} experiment named {n!r}")


def load_paper_config(path: Path) -> PaperConfig:
    return from_dict(PaperConfig, read_toml(path), "")


def fingerprint(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (what a result depends on)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Results:
    """Where each experiment's result is, for figures, numbers and tables (read-only from here on)."""

    root: Path
    budget: str
    runs: dict[str, Path]
    sweeps: dict[str, Path]
    validation: Path
    reused: list[str]
    computed: list[str]


def _scenario(source: str, repo: Path) -> str | Path | None:
    return None if source == "default" else repo / source


def run_experiment(name: str, exp: RunExperiment, overrides: dict[str, Any], out: Path, repo: Path,
                   rerun: bool) -> bool:
    """Run (or reuse) one scenario into ``out``; True if it was computed now."""
    import cascadelab
    from analysis.liquidation_at_risk import initial_snapshot, lar_table, ranking

    spec = load_spec(_scenario(exp.scenario, repo), overrides)
    key = fingerprint({"spec": spec_to_dict(spec), "experiment": to_dict(exp), "version": cascadelab.__version__})
    marker = out / "fingerprint.json"
    if not rerun and marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == key:
        return False
    if out.exists():
        shutil.rmtree(out)
    result = cascadelab.run(spec, counterfactual=exp.counterfactual)
    result.save(out)
    if exp.lar:
        seed = np.random.SeedSequence(result.seed["entropy"], spawn_key=tuple(result.seed["spawn_key"]))
        curves, _ = lar_table(initial_snapshot(spec, seed))
        curves.to_csv(out / "lar_curves.csv", index=False, float_format="%.9g")
        ranking(curves).to_csv(out / "lar_ranking.csv", index=False, float_format="%.9g")
    marker.write_text(json.dumps({"experiment": name, "fingerprint": key}, indent=1))  # written last: complete
    return True


def sweep_plan(exp: SweepExperiment, budget: SweepBudget | None, repo: Path):  # noqa: ANN201 - Plan
    """The sweep's plan with the budget applied (another N, extra scenario overrides)."""
    from cascadelab.sweep.runner import plan_sweep

    path = repo / exp.spec
    raw = copy.deepcopy(read_toml(path))
    if budget is not None:
        table = raw.setdefault("sweep", {})
        if budget.n:
            table["n"] = budget.n
        table["overrides"] = {**table.get("overrides", {}), **budget.overrides}
    return plan_sweep(raw, base=path.parent)


def sweep_experiment(exp: SweepExperiment, budget: SweepBudget | None, out: Path, repo: Path, rerun: bool,
                     workers: int, progress: bool) -> bool:
    """Run, finish or reuse one sweep into ``out`` and write its analysis; True if any run was computed."""
    from analysis.sensitivity import analyze_sweep, write_analysis
    from cascadelab.sweep.runner import run_sweep
    from cascadelab.sweep.store import StoreError

    plan = sweep_plan(exp, budget, repo)
    if rerun and out.exists():
        shutil.rmtree(out)
    try:
        summary = run_sweep(plan, out, workers=workers, resume=True, progress=progress)
    except StoreError:  # results of another spec or budget: start over
        shutil.rmtree(out)
        summary = run_sweep(plan, out, workers=workers, resume=True, progress=progress)
    analysis_dir = out / "analysis"
    if summary.ran or not (analysis_dir / "analysis.json").is_file():
        write_analysis(analyze_sweep(out), analysis_dir)
    return bool(summary.ran)


def validation_experiment(out: Path) -> None:
    """Every registered validation check, as ``cascadelab validate --json`` prints it."""
    from cascadelab.validation import run_checks
    from cascadelab.validation.report import to_json

    out.write_text(to_json(run_checks()))


def run_all(repo: Path, paper_dir: Path, budget: str, *, rerun: bool = False, workers: int = 2,
            progress: bool = True, say: Callable[[str], None] = print) -> Results:
    """Run or reuse every experiment of experiments/paper.toml under ``budget``."""
    cfg = load_paper_config(repo / "experiments" / "paper.toml")
    if budget not in cfg.budgets:
        raise SpecError("budget", f"{budget!r} is not one of {', '.join(cfg.budgets)}")
    plan = cfg.budgets[budget]
    root = paper_dir / "results" / budget
    res = Results(root, budget, {}, {}, root / "validation.json", [], [])
    for name, exp in cfg.runs.items():
        out = root / "runs" / name
        say(f"run {name}: {exp.scenario}")
        done = run_experiment(name, exp, plan.runs.get(name, {}), out, repo, rerun)
        (res.computed if done else res.reused).append(f"runs/{name}")
        res.runs[name] = out
    for name, exp in cfg.sweeps.items():
        out = root / "sweeps" / name
        say(f"sweep {name}: {exp.spec}")
        done = sweep_experiment(exp, plan.sweeps.get(name), out, repo, rerun, workers, progress)
        (res.computed if done else res.reused).append(f"sweeps/{name}")
        res.sweeps[name] = out
    say("validation checks")
    root.mkdir(parents=True, exist_ok=True)
    validation_experiment(res.validation)
    res.computed.append("validation.json")
    return res
