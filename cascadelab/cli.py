"""The ``cascadelab`` command: one entry point, one module per subcommand in cascadelab/commands/.

Bad input (unknown key, bad value, missing file) exits with code 2 and one line on stderr
naming what is wrong and what is allowed; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cascadelab.schema import SpecError

COMMANDS = (
    "run",
    "mechanisms",
    "cascade",
    "validate",
    "bench",
    "sweep",
    "analyze",
    "figures",
    "paper",
)
"""Subcommands, each a module cascadelab.commands.<name> with ``add_parser(subparsers)`` and ``main(args)``."""


class UsageError(Exception):
    """Bad command-line input that is not a spec key (a path, a flag combination)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cascadelab", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"cascadelab.commands.{name.replace('-', '_')}")
        p = module.add_parser(sub)
        p.set_defaults(handler=module.main)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (SpecError, UsageError) as exc:
        if args.debug:
            raise
        print(f"cascadelab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cascadelab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
