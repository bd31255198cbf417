"""Subcommands of the ``cascadelab`` CLI (see cascadelab.cli.COMMANDS)."""
