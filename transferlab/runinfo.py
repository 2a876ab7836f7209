"""Run metadata: what ``run.json`` records — the config, its cells, the domains' fingerprints, versions, git
commit, machine, every invocation, and the history of the folder's questions (:mod:`transferlab.identity`)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from adapt.cells import Cell
from .config import Config
from .executors import cpu_count
from .store import to_jsonable

MAX_INVOCATIONS = 50
MAX_HISTORY = 50
_VERSION_PACKAGES = ("transferlab", "torch", "numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "pyyaml",
                     "tqdm", "ray", "pot", "transformers", "pytorch-adapt")


def start_run_info(previous: dict | None, config: Config, plan, ex, retry_failed: bool,
                   superseded: list[str] | None = None) -> dict:
    """The ``run.json`` of an invocation starting now, carrying over ``previous``'s invocations and history.

    ``history`` lists the folder's earlier questions, newest last: whenever the config's cells change (an
    extension, or ``--supersede`` with the ``superseded`` differences), the previous config, fingerprints and
    cell count are appended with the time they were replaced.
    """
    previous = previous or {}
    at = now()
    invocation = {
        "started_at": at, "finished_at": None, "status": "running", "command": list(sys.argv),
        "config_path": str(config.path.resolve()) if config.path else None, "retry_failed": retry_failed,
        "executor": to_jsonable(ex.describe()),
    }
    if superseded:
        invocation["superseded"] = list(superseded)
    invocations = list(previous.get("invocations", []))[-(MAX_INVOCATIONS - 1):] + [invocation]
    cells = [cell_summary(c) for c in plan.cells]
    history = list(previous.get("history", []))
    old_keys = [c.get("key") for c in previous.get("cells") or []]
    if previous.get("config") is not None and (old_keys != [c["key"] for c in cells] or superseded):
        history.append({"config": previous.get("config"), "fingerprints": previous.get("fingerprints"),
                        "cells": len(old_keys), "from": previous.get("question_since", previous.get("created_at")),
                        "until": at, "change": "superseded" if superseded else "cells added or removed",
                        **({"differences": list(superseded)} if superseded else {})})
    return {
        "name": config.name,
        "config": config.to_dict(),
        "config_path": invocation["config_path"],
        "domains": plan.names,
        "pairs": [list(p) for p in plan.pairs],
        "fingerprints": dict(plan.fingerprints),
        "domain_info": {n: {**domain_info(plan.domains[n]), "fingerprint": plan.fingerprints.get(n)}
                        for n in plan.names},
        "cells": cells,
        "versions": library_versions(),
        "git": git_info(),
        "machine": machine_info(),
        "created_at": previous.get("created_at", at),
        "question_since": at if superseded or not previous else previous.get("question_since",
                                                                              previous.get("created_at", at)),
        "updated_at": at,
        "invocations": invocations,
        "history": history[-MAX_HISTORY:],
    }


def cell_summary(cell: Cell) -> dict:
    return {"key": cell.key, "compute_key": cell.compute_key, "source": cell.source, "target": cell.target,
            "method": cell.method, "seed": cell.seed, "budget": cell.budget}


def domain_info(domain) -> dict:
    return {"kind": getattr(domain, "kind", None), "n": len(domain),
            "input_shape": list(getattr(domain, "input_shape", ())),
            "n_classes": getattr(domain, "n_classes", None),
            "description": getattr(domain, "description", "")}


def library_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in _VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def git_info() -> dict | None:
    """Commit of the transferlab source tree (and whether it has uncommitted changes), if it is a git repo."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(),
            "dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}


def machine_info() -> dict:
    info: dict[str, Any] = {"host": socket.gethostname(), "platform": platform.platform(),
                            "processor": platform.processor() or platform.machine(), "cpus": cpu_count()}
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - provenance is best-effort
        pass
    return info


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
