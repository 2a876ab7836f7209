#!/usr/bin/env python3
"""Bootstrap and task runner: needs only Python 3.10+; installs everything into ``.venv/`` on first use.

    python3 dev.py demo     # install if needed, run the built-in demo matrix, write its report
    python3 dev.py test     # install if needed, run the whole test suite
    python3 dev.py lab      # install if needed, start JupyterLab on notebooks/
    python3 dev.py install  # only (re)install the environment
    python3 dev.py compare RUN_A RUN_B  # exit 1 unless two run folders hold the same per-cell results

The environment is reinstalled when ``pyproject.toml`` or this file changes (a hash is kept in
``.venv/.transferlab-installed``). Extra arguments after the task go to the underlying command, e.g.
``python3 dev.py test -k domains`` or ``python3 dev.py demo --workers 1``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import venv
import zlib
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".transferlab-installed"

# torch first and exact: a bare or loose torch requirement can pull a multi-GB CUDA build.
TORCH = "torch==2.13.0"
EXTRAS = "dev,ray,text,pytorch-adapt,mlflow"  # mlflow: tests/transferlab/test_tracking.py reads a run back
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


# What "the same results" means for two run folders of one config (``compare``): per cell (by key), the
# accuracies, the per-example outcomes (decoded, so a change of encoding alone is no difference), the training
# curves, the status and the selection/convergence facts. Timings, workers and timestamps may differ.
COMPARED_FIELDS = ("compute_key", "status", "reason", "accuracy", "source_accuracy", "selected_step", "steps",
                   "n_source", "n_target_labelled", "n_test", "target_labels", "converged", "curves", "shared_from")


def _decode_outcomes(field: object) -> object:
    """The ``outcomes`` field as plain int lists (the store's zlib+base64/int32-le encoding), stdlib only."""
    if not isinstance(field, dict) or "pred" not in field:
        return field
    out: dict[str, object] = {"given_test": field.get("given_test", False)}
    for name in ("test_index", "pred", "label"):
        values = array("i")
        values.frombytes(zlib.decompress(base64.b64decode(field[name])))
        if sys.byteorder == "big":
            values.byteswap()
        out[name] = values.tolist()
    return out


def _cell_records(run: Path) -> dict[str, dict]:
    cells = run / "cells"
    if not cells.is_dir():
        raise SystemExit(f"[dev.py] compare: {run} has no cells/ folder (expected a transferlab run folder)")
    return {f.stem: json.loads(f.read_text()) for f in sorted(cells.glob("*.json")) if not f.name.startswith(".")}


def compare_runs(run_a: Path, run_b: Path) -> list[str]:
    """The differences between two run folders' per-cell records (empty when they hold the same results)."""
    a, b = _cell_records(run_a), _cell_records(run_b)
    diffs = [f"cell {k}: only in {run_a}" for k in sorted(set(a) - set(b))]
    diffs += [f"cell {k}: only in {run_b}" for k in sorted(set(b) - set(a))]
    for key in sorted(set(a) & set(b)):
        ra, rb = a[key], b[key]
        title = f"cell {key} ({ra.get('source')}->{ra.get('target')} {ra.get('method')} seed={ra.get('seed')} " \
                f"budget={ra.get('budget')})"
        for name in ("key", *COMPARED_FIELDS):
            if ra.get(name) != rb.get(name):
                diffs.append(f"{title}: {name} {ra.get(name)!r:.80} != {rb.get(name)!r:.80}")
        if _decode_outcomes(ra.get("outcomes")) != _decode_outcomes(rb.get("outcomes")):
            diffs.append(f"{title}: per-example outcomes differ")
    return diffs


def _compare(args: list[str]) -> int:
    if len(args) != 2:
        print("[dev.py] usage: python3 dev.py compare RUN_A RUN_B", file=sys.stderr)
        return 2
    run_a, run_b = Path(args[0]), Path(args[1])
    diffs = compare_runs(run_a, run_b)
    for line in diffs[:50]:
        print(line)
    n = len(_cell_records(run_a))
    if diffs:
        print(f"[dev.py] compare: {len(diffs)} difference(s) between {run_a} and {run_b}", file=sys.stderr)
        return 1
    _say(f"compare: {n} cells, identical records ({', '.join(('key',) + COMPARED_FIELDS)}, outcomes)")
    return 0


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
    if task == "compare":  # stdlib only: needs no environment
        return _compare(rest)
    if task not in ("install", "demo", "test", "lab"):
        print(f"[dev.py] unknown task '{task}'; expected demo, test, lab, compare or install", file=sys.stderr)
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
