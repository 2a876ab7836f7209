"""The transfer matrix: config → cells → executor → records (resumable).

:func:`run_matrix` loads the domains, expands the cells, skips those whose record is already in the run
folder, groups the rest by ``compute_key`` (cells with equal results are computed once), runs one cell per
group on an executor (:mod:`adapt.executors`), and writes one record per cell as results arrive. Rerunning the
same command resumes. :func:`run_status` says what a run folder holds without loading any data.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import math
import os
import platform
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cells import Cell, expand_cells
from .config import Config, resolve_domains
from .errors import TransferlabError
from .executors import EXECUTORS, LocalExecutor, RayExecutor, cpu_count, resolve_device
from .store import STATUS_OK, RunStore, to_jsonable

MAX_INVOCATIONS = 50
_VERSION_PACKAGES = ("transferlab", "torch", "numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "pyyaml",
                     "tqdm", "ray", "pot", "transformers", "pytorch-adapt")


# ---------------------------------------------------------------------------------------------- planning
@dataclass
class Plan:
    """What a config asks for: the loaded domains, the resolved domains and pairs, and every cell."""

    config: Config
    domains: dict
    names: list[str]
    pairs: list[tuple[str, str]]
    cells: list[Cell]


def plan_matrix(config: Config) -> Plan:
    """Load the config's domains and expand its cells (raises ConfigError/DataError on bad input)."""
    from .domains import load_domains

    domains = load_domains(config.data, config.base_dir)
    names, pairs = resolve_domains(config, domains)
    cells = expand_cells(config, pairs)
    return Plan(config=config, domains=domains, names=names, pairs=pairs, cells=cells)


def default_run_dir(config: Config) -> Path:
    return Path("results") / config.name


def cell_record(cell: Cell, result: Mapping, shared_from: str | None = None) -> dict:
    """The record of ``cell`` from a computation's ``result`` (which may be another cell's, see
    ``compute_key``): the cell's identity and settings always win over what the result says."""
    record = {k: v for k, v in result.items() if k not in _IDENTITY}
    if cell.compute_key != cell.key:
        # The computation never read this cell's source, so a source accuracy would describe another domain.
        record["source_accuracy"] = None
    record.setdefault("status", STATUS_OK)
    record.setdefault("reason", None)
    record.setdefault("accuracy", None)
    record.setdefault("source_accuracy", None)
    record.setdefault("wall_time", None)
    record.setdefault("device", None)
    record.setdefault("curves", {})
    record.setdefault("params", dict(cell.method_params))
    return {
        "key": cell.key,
        "compute_key": cell.compute_key,
        "source": cell.source,
        "target": cell.target,
        "method": cell.method,
        "method_name": cell.method_name,
        "seed": cell.seed,
        "budget": cell.budget,
        **record,
        "method_params": dict(cell.method_params),
        "model": dict(cell.model),
        "train": dict(cell.train),
        "data": dict(cell.data),
        "shared_from": shared_from,
        "finished_at": result.get("finished_at") or _now(),
    }


_IDENTITY = {"key", "compute_key", "source", "target", "method", "method_name", "seed", "budget",
             "method_params", "model", "train", "data", "shared_from", "finished_at"}


# ---------------------------------------------------------------------------------------------- progress
class Progress:
    """Cells done/failed/remaining with an ETA: a tqdm bar on a terminal, plain log lines otherwise."""

    def __init__(self, total: int, initial_done: int, initial_failed: int, mode: str = "auto", stream=None):
        self.stream = stream or sys.stderr
        if mode == "auto":
            tty = hasattr(self.stream, "isatty") and self.stream.isatty()
            mode = "bar" if tty and not os.environ.get("CI") else "log"
        self.mode = mode
        self.total = total
        self.done = initial_done
        self.failed = initial_failed
        self.start_done = initial_done + initial_failed
        self.t0 = time.monotonic()
        self.bar = None
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=self.start_done, unit="cell", file=self.stream,
                            dynamic_ncols=True, smoothing=0.1)
            self._postfix()

    def _postfix(self, refresh: bool = True) -> None:
        if self.bar is not None:
            remaining = self.total - self.done - self.failed
            text = f"done={self.done} failed={self.failed} left={remaining}"
            self.bar.set_postfix_str(text, refresh=refresh)

    def update(self, cells: Sequence[Cell], record: Mapping) -> None:
        ok = record.get("status") == STATUS_OK
        if ok:
            self.done += len(cells)
        else:
            self.failed += len(cells)
        if self.bar is not None:
            self._postfix(refresh=False)
            self.bar.update(len(cells))
            if not ok:
                self.bar.write(f"failed: {cells[0].title}: {record.get('reason')}", file=self.stream)
            return
        if self.mode != "log":
            return
        finished = self.done + self.failed
        remaining = self.total - finished
        elapsed = time.monotonic() - self.t0
        rate = (finished - self.start_done) / elapsed if elapsed > 0 else 0.0
        eta = _fmt_duration(remaining / rate) if rate > 0 and remaining else "0s"
        outcome = f"acc={record['accuracy']:.3f}" if ok else f"FAILED {record.get('reason')}"
        shared = f" (+{len(cells) - 1} sharing it)" if len(cells) > 1 else ""
        wall = record.get("wall_time")
        took = f" in {wall:.1f}s" if isinstance(wall, (int, float)) else ""
        print(f"[{finished}/{self.total}] {cells[0].title}{shared}: {outcome}{took} | done {self.done}, "
              f"failed {self.failed}, remaining {remaining}, ETA {eta}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# ---------------------------------------------------------------------------------------------- running
@dataclass
class RunResult:
    """What one ``run_matrix`` call did, and the records of the config's cells afterwards."""

    run_dir: Path
    total: int
    already_done: int          # ok records found and kept
    kept_failed: int           # failed records found and kept (not rerun without retry_failed)
    reused: int                # cells filled from an existing record with the same compute_key
    computed_cells: int        # cells whose record this call computed (ok or failed)
    computations: int          # run_cell calls (a compute_key group counts once)
    failed_now: int            # cells this call computed that failed
    elapsed: float
    records: list[dict] = field(default_factory=list)
    executor: dict = field(default_factory=dict)

    @property
    def failed_total(self) -> int:
        return sum(1 for r in self.records if r.get("status") != STATUS_OK)


def run_matrix(
    config: Config,
    out_dir: str | Path | None = None,
    *,
    executor: str = "local",
    workers: int | None = None,
    retry_failed: bool = False,
    ray_address: str | None = None,
    gpus_per_cell: float | None = None,
    cpus_per_cell: float = 1,
    device: str | None = None,
    threads: int | None = None,
    progress: str = "auto",
    log: Callable[[str], None] | None = None,
    plan: Plan | None = None,
) -> RunResult:
    """Run (or resume) a config's transfer matrix into ``out_dir`` (default ``results/<name>``)."""
    if executor not in EXECUTORS:
        raise TransferlabError(f"unknown executor {executor!r}; expected one of {list(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise TransferlabError(f"--workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise TransferlabError(f"--threads must be >= 1, got {threads}")
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.monotonic()
    plan = plan or plan_matrix(config)
    import adapt.train  # noqa: F401 - fail here, not once per cell, when the trainer cannot be imported

    store = RunStore(out_dir if out_dir is not None else default_run_dir(config))
    store.create()
    store.clean_temporary()
    scan = store.scan()
    if scan.unreadable:
        log(f"warning: {len(scan.unreadable)} file(s) in {store.cells_dir} are not valid records and are "
            f"ignored (their cells run again): {', '.join(scan.unreadable[:3])}")

    cells = plan.cells
    existing = scan.records
    ok_by_compute: dict[str, dict] = {}
    for rec in existing.values():
        if rec.get("status") == STATUS_OK and isinstance(rec.get("compute_key"), str):
            ok_by_compute.setdefault(rec["compute_key"], rec)

    already_done = kept_failed = reused = 0
    todo: list[Cell] = []
    for cell in cells:
        rec = existing.get(cell.key)
        if rec is not None and rec.get("status") == STATUS_OK:
            already_done += 1
        elif rec is not None and not retry_failed:
            kept_failed += 1
        elif cell.compute_key in ok_by_compute:
            source_rec = ok_by_compute[cell.compute_key]
            store.write_record(cell_record(cell, source_rec, shared_from=source_rec.get("shared_from")
                                           or source_rec["key"]))
            reused += 1
        else:
            todo.append(cell)
    groups: dict[str, list[Cell]] = defaultdict(list)
    for cell in todo:
        groups[cell.compute_key].append(cell)

    resolved_device = resolve_device(config.train.get("device"), device)
    if executor == "local" and resolved_device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            where = "--device" if device else "config field 'train.device'"
            raise TransferlabError(f"{where} asks for {resolved_device}, but this machine has no CUDA device "
                                   f"(use cpu or auto)")
    if executor == "ray":
        ex = RayExecutor(plan.domains, address=ray_address, workers=workers, cpus_per_cell=cpus_per_cell,
                         gpus_per_cell=gpus_per_cell, config_device=config.train.get("device", "auto"),
                         device_override=device)
    else:
        if workers and workers > 1 and resolved_device.startswith("cuda"):
            log(f"note: device {resolved_device}: the local executor runs one cell at a time on a GPU "
                f"(--workers {workers} ignored; use --executor ray to spread cells over GPUs)")
        ex = LocalExecutor(plan.domains, config.data, config.base_dir, workers=workers,
                           device=resolved_device, device_override=device, threads=threads)

    run_info = _start_run_info(store, config, plan, ex, retry_failed)
    store.write_run(run_info)
    invocation = run_info["invocations"][-1]

    n_reps = len(groups)
    n_cells_todo = len(todo)
    if todo:
        log(f"{config.name}: {len(cells)} cells — {already_done} already done"
            + (f", {kept_failed} failed kept" if kept_failed else "")
            + (f", {reused} reused" if reused else "")
            + f", {n_cells_todo} to run ({n_reps} computations) with {_describe(ex)} → {store.root}")
    counters = {"computed_cells": 0, "computations": 0, "failed_now": 0}
    progress_bar = Progress(len(cells), already_done + reused, kept_failed, mode=progress) if todo else None

    def on_result(rep: Cell, result: dict) -> None:
        members = groups[rep.compute_key]
        result = dict(result)
        result.setdefault("finished_at", _now())
        first = None
        for cell in [rep] + [c for c in members if c.key != rep.key]:
            shared_from = None if cell.key == rep.key else rep.key
            record = cell_record(cell, result, shared_from=shared_from)
            store.write_record(record)
            first = first or record
        counters["computations"] += 1
        counters["computed_cells"] += len(members)
        if first["status"] != STATUS_OK:
            counters["failed_now"] += len(members)
        if progress_bar is not None:
            progress_bar.update(members, first)

    status = "interrupted"
    try:
        ex.run([members[0] for members in groups.values()], on_result)
        status = "finished"
    finally:
        if progress_bar is not None:
            progress_bar.close()
        invocation.update(status=status, finished_at=_now(), executor=to_jsonable(ex.describe()), **counters)
        run_info["updated_at"] = invocation["finished_at"]
        store.write_run(run_info)
        final = store.scan().records
        records = [final[c.key] for c in cells if c.key in final]
        try:
            store.export_parquet(final.values())
        except Exception as exc:  # noqa: BLE001 - the export must not hide the run's own outcome
            log(f"warning: could not write {store.parquet_file}: {exc}")

    return RunResult(run_dir=store.root, total=len(cells), already_done=already_done, kept_failed=kept_failed,
                     reused=reused, elapsed=time.monotonic() - t0, records=records,
                     executor=ex.describe(), **counters)


def _describe(ex) -> str:
    info = ex.describe()
    if info["executor"] == "local":
        if info["workers"] == 1:
            return f"local executor (in-process, {info['device']})"
        return f"local executor ({info['workers']} worker processes × {info['threads_per_worker']} threads)"
    return f"ray executor ({info.get('address') or 'local instance'})"


def _start_run_info(store: RunStore, config: Config, plan: Plan, ex, retry_failed: bool) -> dict:
    previous = {}
    try:
        previous = store.read_run() or {}
    except TransferlabError:
        previous = {}
    now = _now()
    invocation = {
        "started_at": now, "finished_at": None, "status": "running", "command": list(sys.argv),
        "config_path": str(config.path.resolve()) if config.path else None, "retry_failed": retry_failed,
        "executor": to_jsonable(ex.describe()),
    }
    invocations = list(previous.get("invocations", []))[-(MAX_INVOCATIONS - 1):] + [invocation]
    return {
        "name": config.name,
        "config": config.to_dict(),
        "config_path": invocation["config_path"],
        "domains": plan.names,
        "pairs": [list(p) for p in plan.pairs],
        "domain_info": {n: _domain_info(plan.domains[n]) for n in plan.names},
        "cells": [_cell_summary(c) for c in plan.cells],
        "versions": library_versions(),
        "git": git_info(),
        "machine": machine_info(),
        "created_at": previous.get("created_at", now),
        "updated_at": now,
        "invocations": invocations,
    }


def _cell_summary(cell: Cell) -> dict:
    return {"key": cell.key, "compute_key": cell.compute_key, "source": cell.source, "target": cell.target,
            "method": cell.method, "seed": cell.seed, "budget": cell.budget}


def _domain_info(domain) -> dict:
    return {"kind": getattr(domain, "kind", None), "n": len(domain),
            "input_shape": list(getattr(domain, "input_shape", ())),
            "n_classes": getattr(domain, "n_classes", None),
            "description": getattr(domain, "description", "")}


# ---------------------------------------------------------------------------------------------- provenance
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


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------- summaries
def summary_rows(records: Sequence[Mapping]) -> list[dict]:
    """Per (method, budget): cells ok and failed, mean target accuracy and its standard error."""
    groups: dict[tuple, list[Mapping]] = defaultdict(list)
    order: list[tuple] = []
    for r in records:
        k = (r.get("method"), r.get("budget"))
        if k not in groups:
            order.append(k)
        groups[k].append(r)
    rows = []
    methods = list(dict.fromkeys(m for m, _ in order))
    for method, budget in sorted(order, key=lambda k: (methods.index(k[0]), k[1])):
        rs = groups[(method, budget)]
        accs = [float(r["accuracy"]) for r in rs
                if r.get("status") == STATUS_OK and r.get("accuracy") is not None]
        mean = sum(accs) / len(accs) if accs else None
        sem = None
        if len(accs) > 1:
            var = sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)
            sem = math.sqrt(var / len(accs))
        rows.append({"method": method, "budget": budget, "ok": len(accs),
                     "failed": sum(1 for r in rs if r.get("status") != STATUS_OK), "mean_accuracy": mean,
                     "sem": sem})
    return rows


def format_table(rows: Sequence[Mapping], columns: Sequence[tuple[str, str]],
                 float_format: str = "{:.3f}") -> str:
    """A plain aligned text table: ``columns`` are ``(key, header)``; numbers right-aligned."""
    cells = [[_fmt(r.get(k), float_format) for k, _ in columns] for r in rows]
    headers = [h for _, h in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r.get(k), (int, float)) or r.get(k) is None for r in rows) for k, _ in columns]

    def line(values):
        parts = zip(values, widths, numeric, strict=True)
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(c) for c in cells])


def _fmt(v, float_format: str = "{:.3f}") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return float_format.format(v)
    return str(v)


def accuracy_table(records: Sequence[Mapping]) -> str:
    rows = summary_rows(records)
    for r in rows:
        if r["mean_accuracy"] is None:
            r["accuracy"] = None
        else:
            sem = f" ± {r['sem']:.3f}" if r["sem"] is not None else ""
            r["accuracy"] = f"{r['mean_accuracy']:.3f}{sem}"
    return format_table(rows, [("method", "method"), ("budget", "budget"), ("ok", "ok"), ("failed", "failed"),
                               ("accuracy", "target accuracy (mean ± s.e.)")])


# ---------------------------------------------------------------------------------------------- status
@dataclass
class RunStatus:
    run_dir: Path
    info: dict
    expected: list[dict]
    done: list[dict]        # ok records of expected cells
    failed: list[dict]      # failed records of expected cells
    missing: list[dict]     # expected cells without a record
    extra: int              # records of cells not in run.json's config (an older config of this folder)
    unreadable: list[str]


def run_status(run_dir: str | Path) -> RunStatus:
    """Compare a run folder's records with the cells its ``run.json`` expects (no data is loaded)."""
    store = RunStore(run_dir)
    if not store.root.is_dir():
        raise TransferlabError(f"{store.root}: no such run folder")
    info = store.read_run()
    if info is None:
        raise TransferlabError(f"{store.root}: not a run folder (no {store.run_file.name}); "
                               f"'transferlab run CONFIG' creates one")
    expected = info.get("cells")
    if not isinstance(expected, list):
        raise TransferlabError(f"{store.run_file}: has no 'cells' list (not written by transferlab run?)")
    scan = store.scan()
    done, failed, missing = [], [], []
    keys = set()
    for cell in expected:
        keys.add(cell.get("key"))
        rec = scan.records.get(cell.get("key"))
        if rec is None:
            missing.append(cell)
        elif rec.get("status") == STATUS_OK:
            done.append(rec)
        else:
            failed.append(rec)
    extra = sum(1 for k in scan.records if k not in keys)
    return RunStatus(run_dir=store.root, info=info, expected=expected, done=done, failed=failed,
                     missing=missing, extra=extra, unreadable=scan.unreadable)


def status_rows(status: RunStatus) -> list[dict]:
    """Per (method, budget): expected, done, failed, missing, mean accuracy of the done cells."""
    rows: dict[tuple, dict] = {}
    for cell in status.expected:
        k = (cell.get("method"), cell.get("budget"))
        rows.setdefault(k, {"method": k[0], "budget": k[1], "expected": 0, "done": 0, "failed": 0,
                            "missing": 0, "_accs": []})
        rows[k]["expected"] += 1
    for rec in status.done:
        row = rows.get((rec.get("method"), rec.get("budget")))
        if row is not None:
            row["done"] += 1
            if rec.get("accuracy") is not None:
                row["_accs"].append(float(rec["accuracy"]))
    for rec in status.failed:
        row = rows.get((rec.get("method"), rec.get("budget")))
        if row is not None:
            row["failed"] += 1
    for cell in status.missing:
        rows[(cell.get("method"), cell.get("budget"))]["missing"] += 1
    out = []
    for row in rows.values():
        accs = row.pop("_accs")
        row["mean_accuracy"] = sum(accs) / len(accs) if accs else None
        out.append(row)
    return out


def plan_distances(config: Config) -> tuple[dict, list[tuple[str, str]]]:
    """The loaded domains and the config's (source, target) pairs, for distance tables."""
    from .domains import load_domains

    domains = load_domains(config.data, config.base_dir)
    _, pairs = resolve_domains(config, domains)
    return domains, pairs
