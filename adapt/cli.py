"""Moved: the command line lives in :mod:`transferlab.cli`, above the ``adapt`` and ``analysis`` packages.

This stub keeps ``from adapt.cli import main`` and console scripts installed before the move working; it
imports the CLI only when called, so importing :mod:`adapt` never reaches up.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from transferlab.cli import main as cli_main

    return cli_main(argv)
