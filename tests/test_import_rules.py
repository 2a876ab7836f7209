"""The three rooms import one way: transferlab -> adapt, analysis; adapt and analysis import neither each other
nor transferlab. Read from the source (every import statement, at any depth, by ``ast``), not from what a
test run happens to load."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

ROOMS = ("adapt", "analysis", "transferlab")
# Which rooms each room may import (itself always).
ALLOWED = {"adapt": set(), "analysis": set(), "transferlab": {"adapt", "analysis"}}
# Imports that break the rule today and are being removed (issue 19, phase 2); must be empty when it closes.
TEMPORARY_ALLOWLIST: set[tuple[str, str]] = {
    ("analysis/_arrays.py", "adapt"),
    ("analysis/distances.py", "adapt"),
    ("analysis/forecast.py", "adapt"),
    ("analysis/negative.py", "adapt"),
    ("analysis/predictors.py", "adapt"),
    ("analysis/report.py", "adapt"),
    ("analysis/results.py", "adapt"),
    ("analysis/results.py", "transferlab"),
    ("analysis/transferability.py", "adapt"),
}


def imported_rooms(path: Path, package: str) -> set[str]:
    """The top-level rooms ``path`` (a module of ``package``) imports, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module_parts = path.relative_to(REPO).with_suffix("").parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb from this module's package
                base = module_parts[: len(module_parts) - node.level]
                names = [".".join(base + ((node.module,) if node.module else ()))]
            else:
                names = [node.module or ""]
        else:
            continue
        found.update(name.split(".")[0] for name in names)
    return {room for room in found if room in ROOMS and room != package}


def violations() -> set[tuple[str, str]]:
    out = set()
    for room in ROOMS:
        for path in sorted((REPO / room).rglob("*.py")):
            for other in imported_rooms(path, room) - ALLOWED[room]:
                out.add((path.relative_to(REPO).as_posix(), other))
    return out


def test_no_room_imports_against_the_flow():
    new = sorted(violations() - TEMPORARY_ALLOWLIST)
    assert new == [], f"imports against transferlab -> adapt, analysis: {new}"


def test_the_temporary_allowlist_holds_only_live_violations():
    stale = sorted(TEMPORARY_ALLOWLIST - violations())
    assert stale == [], f"allowlisted imports that are gone (drop them from the list): {stale}"


def test_the_reader_sees_every_kind_of_import(tmp_path, monkeypatch):
    """The checker itself bites: top-level, nested, relative-climbing and ``from`` imports are all seen."""
    import conftest

    pkg = tmp_path / "adapt" / "sub"
    pkg.mkdir(parents=True)
    module = pkg / "mod.py"
    module.write_text("import analysis.negative\n"
                      "def f():\n    from transferlab import cli\n"
                      "from ...transferlab import plan\n"
                      "from . import sibling\n")
    monkeypatch.setattr(conftest, "REPO", tmp_path)
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    assert imported_rooms(module, "adapt") == {"analysis", "transferlab"}
