#!/usr/bin/env python3
"""Bootstrap and task runner: needs only Python 3.10+; installs everything into ``.venv/`` on first use.

    python3 dev.py demo     # install if needed, run the built-in demo matrix, write its report
    python3 dev.py test     # install if needed, run the whole test suite
    python3 dev.py lab      # install if needed, start JupyterLab on notebooks/
    python3 dev.py install  # only (re)install the environment

The environment is reinstalled when ``pyproject.toml`` or this file changes (a hash is kept in
``.venv/.transferlab-installed``). Extra arguments after the task go to the underlying command, e.g.
``python3 dev.py test -k domains`` or ``python3 dev.py demo --workers 1``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".transferlab-installed"

# torch first and exact: a bare or loose torch requirement can pull a multi-GB CUDA build.
TORCH = "torch==2.13.0"
EXTRAS = "dev,ray,text,pytorch-adapt,mlflow"  # mlflow: tests/test_tracking.py reads a run back
# pytorch-adapt's metadata (and pytorch-metric-learning's) requires torchvision, whose PyPI wheels do not
# import beside the CPU torch wheel — and a broken torchvision breaks torchmetrics' and transformers'
# imports too. The parts we use (layers, hooks, adapters, validators) run without it: install them bare.
NO_DEPS = ["pytorch-adapt==0.0.83", "torchmetrics==0.9.3", "pytorch-metric-learning==1.6.3"]


def _say(msg: str) -> None:
    print(f"[dev.py] {msg}", flush=True)


def _run(cmd: list[str], **kw) -> None:
    _say(" ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)


def _fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "dev.py"):
        h.update((ROOT / name).read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def ensure_env(force: bool = False) -> None:
    """Create ``.venv`` and install the project (editable) with its extras, unless already current."""
    if not force and STAMP.is_file() and STAMP.read_text().strip() == _fingerprint() and PY.exists():
        return
    if sys.version_info < (3, 10):
        sys.exit(f"[dev.py] Python >= 3.10 is needed, this is {sys.version.split()[0]}")
    if not PY.exists():
        _say(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    pip = [PY, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "-q", TORCH])
    _run([*pip, "install", "-q", "-e", f".[{EXTRAS}]"])
    _run([*pip, "install", "-q", "--no-deps", *NO_DEPS])
    _check_imports()
    STAMP.write_text(_fingerprint())
    _say("environment ready")


def _check_imports() -> None:
    """Fail the install loudly if torchvision slipped in or the key packages do not import together."""
    probe = (
        "import importlib.util, sys\n"
        "if importlib.util.find_spec('torchvision'):\n"
        "    sys.exit('torchvision got installed (a dependency pulled it in); it breaks imports beside the CPU "
        "torch wheel: pip uninstall torchvision')\n"
        "import torch, transformers, pytorch_adapt.layers, adapt, analysis\n"
    )
    _run([PY, "-W", "ignore", "-c", probe])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def main(argv: list[str]) -> int:
    task, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if task in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    if task not in ("install", "demo", "test", "lab"):
        print(f"[dev.py] unknown task '{task}'; expected demo, test, lab or install", file=sys.stderr)
        return 2
    ensure_env(force=task == "install")
    env = _env()
    tl = BIN / "transferlab"
    try:
        if task == "demo":
            _run([tl, "run", "configs/demo.yaml", *rest], env=env)
            _run([tl, "report", "results/demo"], env=env)
            _say("done: open results/demo/report.html (or report.md)")
        elif task == "test":
            env.setdefault("HF_HUB_OFFLINE", "1")
            env.setdefault("HF_DATASETS_OFFLINE", "1")
            _run([PY, "-m", "pytest", *rest], env=env)
        elif task == "lab":
            _run([BIN / "jupyter", "lab", "notebooks/", *rest], env=env)
    except subprocess.CalledProcessError as err:
        return err.returncode or 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
