"""The report's tables, written as LaTeX from saved results (and, for the model section, from
the mechanism registry and ASSUMPTIONS.md, so the text cannot drift from the code)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from analysis.numbers import MECHANISM_LABELS, pct, ratio, tex_escape, usd
from cascadelab.spec import load_spec


def _tabular(cols: str, header: list[str], rows: list[list[str]], *, size: str = "\\small",
             long: bool = False) -> str:
    """A booktabs table; ``p{w}`` columns are set ragged right (justified narrow columns leave gaps)."""
    cols = cols.replace("p{", ">{\\raggedright\\arraybackslash}p{")
    size += "\\setlength{\\tabcolsep}{3pt}"
    head = " & ".join(f"\\textbf{{{h}}}" for h in header) + " \\\\"
    body = "\n".join(" & ".join(r) + " \\\\" for r in rows)
    if long:
        return (f"{{{size}\n\\begin{{longtable}}{{{cols}}}\n\\toprule\n{head}\n\\midrule\n\\endhead\n"
                f"{body}\n\\bottomrule\n\\end{{longtable}}}}\n")
    return f"{size}\n\\begin{{tabular}}{{{cols}}}\n\\toprule\n{head}\n\\midrule\n{body}\n\\bottomrule\n\\end{{tabular}}\n"


def _fmt_default(v: object) -> str:
    if isinstance(v, float):
        if math.isinf(v):
            return "\u221e"  # set as $\\infty$ after escaping
        return f"{v:g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_fmt_default(x)}" for k, x in v.items() if k != "kind") + "}"
    return str(v)


def mechanisms_table() -> str:
    """Registered mechanisms: id, what it is, key parameters with their production defaults, source."""
    from mechanisms.registry import describe

    rows = []
    for m in describe():
        params = ", ".join(f"{p['name']}={_fmt_default(p['default'])}" for p in m["params"][:6])
        params = tex_escape(params).replace("\u221e", "$\\infty$")
        rows.append([f"\\texttt{{{tex_escape(m['id'])}}}", tex_escape(m["doc"]), params,
                     tex_escape(m["source"]).replace("/", "/\\allowbreak{}")])  # long paths wrap at a slash
    return _tabular("p{0.14\\linewidth}p{0.27\\linewidth}p{0.27\\linewidth}p{0.24\\linewidth}",
                    ["id", "mechanism", "main parameters (defaults)", "source"], rows, size="\\scriptsize")


def experiments_table(root: Path) -> str:
    """Scenarios and sweeps behind the results: size, horizon, protocols, mechanisms, design, seeds."""
    rows = []
    for d in sorted((root / "runs").iterdir()):
        spec = load_spec(json.loads((d / "spec.json").read_text()))
        positions = sum(p.count for p in spec.populations.values()) + len(spec.positions)
        mechs = ", ".join(f"{p}: {MECHANISM_LABELS.get(c.mechanism.kind_id, c.mechanism.kind_id)}"
                          for p, c in spec.protocols.items())
        rows.append([tex_escape(d.name), "run", f"{positions:,} positions, {spec.run.steps} steps of "
                     f"{spec.run.dt_seconds:g} s", tex_escape(mechs), f"{spec.run.seed}"])
    for d in sorted((root / "sweeps").iterdir()):
        man = json.loads((d / "manifest.json").read_text())
        sweep = man["sweep"]
        design = f"{man['method']}, N={sweep['n']}, {man['n_rows']} rows x {sweep['replicates']} seed(s)"
        mechs = ", ".join(MECHANISM_LABELS.get(m["name"], m["name"]) for m in man.get("mechanisms", []))
        rows.append([tex_escape(d.name), "sweep", tex_escape(design) + f", {man['n_runs']:,} runs",
                     tex_escape(mechs or "scenario's own"), f"{man.get('root_seed', man.get('seed', ''))}"])
    return _tabular("p{0.14\\linewidth}p{0.07\\linewidth}p{0.31\\linewidth}p{0.3\\linewidth}p{0.08\\linewidth}",
                    ["name", "kind", "size", "mechanisms", "root seed"], rows)


def comparison_table(root: Path, sweep: str = "families") -> str:
    """Per mechanism: mean and p95 of bad debt and of max price impact, with bootstrap CIs."""
    a = json.loads((root / "sweeps" / sweep / "analysis" / "analysis.json").read_text())
    s = pd.DataFrame(a["tables"]["comparison_summary"])
    rows = []
    for mech in a["mechanisms"]:
        cells = [tex_escape(MECHANISM_LABELS.get(mech, mech))]
        for out, fmt in (("bad_debt_usd", usd), ("max_price_impact", pct)):
            for stat in ("mean", "p95", "es95"):
                r = s[(s["output"] == out) & (s["mechanism"] == mech) & (s["stat"] == stat)]
                if r.empty:
                    cells.append("--")
                    continue
                r = r.iloc[0]
                cells.append(f"{fmt(r['value'])} \\newline {{\\tiny [{fmt(r['lo'])}, {fmt(r['hi'])}]}}")
        rows.append(cells)
    return _tabular("p{0.16\\linewidth}" + "p{0.115\\linewidth}" * 6,
                    ["design", "bad debt mean", "p95", "ES 95\\%", "impact mean", "p95", "ES 95\\%"], rows,
                    size="\\footnotesize")


def sensitivity_table(root: Path, sweep: str = "sensitivity") -> str:
    """Sobol' S1 and ST (with CI half-widths) per input for bad debt and max price impact."""
    a = json.loads((root / "sweeps" / sweep / "analysis" / "analysis.json").read_text())
    idx = pd.DataFrame(a["tables"]["indices"])
    idx = idx[idx["method"] == "sobol"]
    rows = []
    for param in dict.fromkeys(idx["parameter"]):
        cells = [tex_escape(str(param).replace("_", " "))]
        for out in ("bad_debt_usd", "max_price_impact"):
            for index in ("S1", "ST"):
                r = idx[(idx["parameter"] == param) & (idx["output"] == out) & (idx["index"] == index)]
                v = r.iloc[0] if len(r) else None
                cells.append("--" if v is None or not math.isfinite(v["value"]) else
                             f"{ratio(v['value'])} $\\pm$ {ratio(v['conf'])}")
        rows.append(cells)
    return _tabular("p{0.26\\linewidth}" + "p{0.15\\linewidth}" * 4,
                    ["input", "bad debt S1", "bad debt ST", "impact S1", "impact ST"], rows, size="\\footnotesize")


def validation_table(root: Path) -> str:
    """Every validation check: name, source, expected, got, tolerance, status."""
    v = json.loads((root / "validation.json").read_text())
    rows = []
    for ch in v["checks"]:
        status = {"pass": "pass", "fail": "\\textbf{FAIL}", "error": "\\textbf{ERROR}", "skip": "skip",
                  "info": "info"}[ch["status"]]
        name = tex_escape(ch["name"]).replace(".", ".\\allowbreak{}")  # long dotted names wrap at the dots
        rows.append([f"\\texttt{{{name}}}", tex_escape(ch["source"]), tex_escape(ch["expected"]),
                     tex_escape(ch["got"]), tex_escape(ch["tolerance"]), status])
    return _tabular("p{0.3\\linewidth}p{0.22\\linewidth}p{0.12\\linewidth}p{0.1\\linewidth}p{0.1\\linewidth}"
                    "p{0.05\\linewidth}", ["check", "source", "expected", "got", "tolerance", ""], rows,
                    size="\\scriptsize", long=True)


def _md_inline(text: str) -> str:
    """Markdown emphasis and code to LaTeX, escaping everything else."""
    parts = re.split(r"(\*\*[^*]+\*\*|\*[^*]+\*|`[^`]+`)", text)
    out = []
    for part in parts:
        if part.startswith("**") and part.endswith("**"):
            out.append(f"\\textbf{{{tex_escape(part[2:-2])}}}")
        elif part.startswith("`") and part.endswith("`"):
            out.append(f"\\texttt{{{tex_escape(part[1:-1])}}}")
        elif part.startswith("*") and part.endswith("*") and len(part) > 2:
            out.append(f"\\emph{{{tex_escape(part[1:-1])}}}")
        else:
            out.append(tex_escape(part))
    return "".join(out)


def limitations(assumptions: Path) -> str:
    """ASSUMPTIONS.md as LaTeX: one paragraph heading per section, its bullets as a list."""
    out: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if items:
            out.append("\\begin{itemize}\\setlength\\itemsep{1pt}\n" + "\n".join(f"\\item {i}" for i in items)
                       + "\n\\end{itemize}")
            items.clear()

    for line in assumptions.read_text().splitlines():
        if line.startswith("## "):
            flush()
            out.append(f"\\paragraph{{{tex_escape(line[3:].strip())}}}")
        elif line.startswith("- "):
            items.append(_md_inline(line[2:].strip()))
        elif line.startswith("  ") and items:
            items[-1] += " " + _md_inline(line.strip())
    flush()
    return "\n".join(out) + "\n"
