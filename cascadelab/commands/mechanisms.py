"""``cascadelab mechanisms [--json]``: registered mechanism ids with parameters, defaults and sources."""

from __future__ import annotations

import argparse
import json
import math


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("mechanisms", help="list the registered liquidation mechanisms")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def main(args: argparse.Namespace) -> int:
    from mechanisms.registry import describe

    rows = describe()
    if args.json:
        print(json.dumps(rows, indent=2, default=lambda x: None if isinstance(x, float) and math.isinf(x) else str(x)))
        return 0
    for m in rows:
        print(f"{m['id']}: {m['doc']}")
        print(f"  source: {m['source']}")
        for preset, values in m.get("presets", {}).items():
            print(f"  preset {preset}: " + (", ".join(f"{k}={v}" for k, v in values.items()) or "the defaults below"))
        for prm in m["params"]:
            print(f"  {prm['name']:<22} default {prm['default']!s:<12} allowed {prm['allowed']:<18} {prm['doc']}")
        print()
    return 0
