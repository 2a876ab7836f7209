"""Static correctness: no undefined names, unused imports or variables, or syntax errors (ruff's F and E9)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_ruff_finds_no_correctness_problems():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "adapt", "analysis", "transferlab", "tests",
                          "bench", "dev.py"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
