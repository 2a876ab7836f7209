"""Throughput of a whole transfer matrix, end to end: ``transferlab run CONFIG`` as a user runs it.

Each run is a fresh subprocess (interpreter start, imports, data loading, worker start-up, every cell, the
records, ``run.json`` and the Parquet export all count) into an empty temporary folder, so nothing is
resumed. Reported per config: wall time (median over ``--reps``), cells and computations per minute (cells
sharing a ``compute_key`` — the scratch baseline across sources — are computed once), the summed in-cell
``wall_time`` of the records (the trainer's own time) and the parallel efficiency
``sum(in-cell time) / (wall × workers)``, and the CPU seconds of the run and all its processes (``cpu s``).
The load average is printed before and after: on a shared machine the wall time includes waiting for
cores, while ``cpu s / cores`` stays close to what the run needs on an idle machine.

Default: the built-in demo (``configs/demo.yaml``). ``--office`` adds the Office-Caltech10 SURF matrix
(``configs/office_caltech_surf.yaml``: 12 pairs × 4 methods × 3 seeds = 144 cells), skipped where the shared
data folder is absent. Run::

    .venv/bin/python bench/bench_matrix.py [--office] [--reps 1] [--workers N] [--executor local|ray]
                                           [--config FILE ...] [--json bench/matrix.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _timing as T  # noqa: E402

DEMO = ROOT / "configs" / "demo.yaml"
OFFICE = ROOT / "configs" / "office_caltech_surf.yaml"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def run_once(config: Path, args) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench_matrix_"))
    cmd = [sys.executable, "-m", "transferlab", "run", str(config), "--out", str(out / "run"), "--progress", "none",
           "--executor", args.executor]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    try:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        records = [json.loads(p.read_text()) for p in (out / "run" / "cells").glob("*.json")]
        info = json.loads((out / "run" / "run.json").read_text())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    own = [r for r in records if r.get("shared_from") is None]
    in_cell = sum(float(r.get("wall_time") or 0.0) for r in own)
    executor = info["invocations"][-1]["executor"]
    workers = executor.get("workers") or 1
    return {"wall": wall, "cpu": cpu, "cells": len(records), "computations": len(own),
            "failed": sum(r.get("status") != "ok" for r in records), "in_cell": in_cell, "workers": workers,
            "threads": executor.get("threads_per_worker"), "summary": proc.stdout.strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, action="append", help="config(s) to time (default: the demo)")
    ap.add_argument("--office", action="store_true", help="also time configs/office_caltech_surf.yaml")
    ap.add_argument("--reps", type=int, default=1, help="runs per config; the median is reported (default 1)")
    ap.add_argument("--workers", type=int, help="passed to transferlab run (default: its own)")
    ap.add_argument("--executor", choices=("local", "ray"), default="local")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    configs = list(args.config or [DEMO])
    if args.office:
        from transferlab.config import load_config

        data = load_config(OFFICE).base_dir / load_config(OFFICE).data["path"]
        if data.is_dir():
            configs.append(OFFICE)
        else:
            T.eprint(f"skipping {OFFICE.name}: no data at {data.resolve()}")

    machine = T.machine_info()
    print(f"# bench_matrix — {machine['date']}")
    print(f"# {T.describe_machine(machine)}")
    print(f"# command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    workers = args.workers or "default"
    print(f"# executor: {args.executor}, workers: {workers}, reps: {args.reps}\n", flush=True)
    rows = []
    for config in configs:
        runs = []
        for rep in range(args.reps):
            before = _load()
            res = run_once(config, args)
            res["load"] = f"{before} → {_load()}"
            T.eprint(f"{config.name} rep {rep + 1}/{args.reps}: {res['wall']:.1f} s, {res['cells']} cells, "
                     f"load {res['load']}")
            runs.append(res)
        walls = [r["wall"] for r in runs]
        wall = statistics.median(walls)
        last = runs[-1]
        rows.append({
            "config": config.name, "cells": last["cells"], "computations": last["computations"],
            "failed": last["failed"], "wall s": f"{wall:.1f}",
            "wall range": f"{min(walls):.1f}–{max(walls):.1f}" if len(walls) > 1 else "",
            "cells/min": f"{last['cells'] / wall * 60:.1f}",
            "computations/min": f"{last['computations'] / wall * 60:.1f}",
            "in-cell s": f"{last['in_cell']:.1f}", "cpu s": f"{last['cpu']:.1f}",
            "workers×threads": f"{last['workers']}×{last['threads']}",
            "efficiency": f"{last['in_cell'] / (wall * last['workers']):.2f}", "load avg": last["load"],
        })
        print(f"## {config.name}\n{last['summary']}\n", flush=True)
    columns = ["config", "cells", "computations", "failed", "wall s", "wall range", "cells/min",
               "computations/min", "in-cell s", "cpu s", "workers×threads", "efficiency", "load avg"]
    print(T.markdown_table(rows, columns))
    if args.json:
        T.write_json(args.json, {"machine": machine, "argv": sys.argv, "rows": rows})


if __name__ == "__main__":
    main()
