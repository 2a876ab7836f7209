"""Executors: run cells somewhere and hand each result back to the driver as soon as it exists.

An executor gets the cells to compute (one per ``compute_key``) and calls ``on_result(cell, result)`` in the
driver process for each one, in completion order; the driver writes the records, so a crash loses only the
cells in flight. ``result`` is what :func:`compute_cell` returns: the trainer's record, or a ``failed`` one.

- ``local``: in-process, one cell at a time (always so on a GPU), or a process pool of ``workers`` on CPU.
  Each pool worker loads the domains itself once (a per-process cache) and uses
  ``torch.set_num_threads(max(1, cores // workers))`` threads (``threads`` overrides: small models on a
  busy machine run much faster with 1).
- ``ray``: one Ray task per cell on a Ray cluster — the one at ``address`` (``ray start --head`` then
  ``--ray-address auto``), or a local instance started for the run. The domains are ``ray.put`` once and
  tasks receive them by reference; ``num_cpus``/``num_gpus`` per task are configurable.

On CPU both give the same records for the same seeds (each cell is seeded by the trainer and runs with the
same thread count, ``cpus_per_cell`` under Ray and ``cores // workers`` in the pool).
"""

from __future__ import annotations

import os
import signal
import socket
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from adapt.cells import Cell
from adapt.errors import DataError
from .store import STATUS_FAILED, STATUS_OK

OnResult = Callable[[Cell, dict], None]


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_device(config_device: str | None, override: str | None = None) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``: the override if given, else the config's (``auto``: cuda if any)."""
    device = override or config_device or "auto"
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# ---------------------------------------------------------------------------------------------- one cell
def failure_reason(exc: BaseException) -> str:
    """``"ExceptionType: first line of the message"`` (one line, at most 300 characters)."""
    lines = str(exc).strip().splitlines()
    message = lines[0].strip() if lines else ""
    reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return reason if len(reason) <= 300 else reason[:297] + "..."


def failed_result(exc: BaseException, wall_time: float | None = None, device: str | None = None) -> dict:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"status": STATUS_FAILED, "reason": failure_reason(exc), "accuracy": None, "source_accuracy": None,
            "wall_time": wall_time, "device": device, "traceback": tb[-4000:], "worker": _worker()}


def _worker() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def compute_cell(cell: Cell, source, target, device: str | None = None) -> dict:
    """Run one cell with :func:`adapt.train.run_cell`; never raises for a failing cell.

    An exception becomes a ``failed`` result whose ``reason`` is its type and message; so does a record
    without a finite ``accuracy``. (KeyboardInterrupt and other non-``Exception`` errors propagate.)
    """
    from adapt import train  # looked up per call, so a test can monkeypatch train.run_cell

    t0 = time.perf_counter()
    save = bool((cell.train or {}).get("save_models"))
    try:
        if save:  # keep the final network (adapt.saved): the same training, its weights come back too
            out, model = train.run_cell(cell, source, target, device=device, return_model=True)
        else:
            out = train.run_cell(cell, source, target, device=device)
        if not isinstance(out, Mapping):
            raise TypeError(f"run_cell returned {type(out).__name__}, expected a record (dict)")
    except Exception as exc:  # noqa: BLE001 - a failing cell must not stop the matrix
        return failed_result(exc, time.perf_counter() - t0, device)
    out = dict(out)
    if save and out.get("status", STATUS_OK) == STATUS_OK:
        from adapt.plugins import method_class
        from adapt.saved import saved_model_fields

        out.update(saved_model_fields(model, target, method_class(cell.method_name, cell.code).exports_model))
    out.setdefault("wall_time", time.perf_counter() - t0)
    out.setdefault("status", STATUS_OK)
    out.setdefault("worker", _worker())
    if out["status"] == STATUS_OK:
        acc = out.get("accuracy")
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or acc != acc:
            out["status"] = STATUS_FAILED
            out["reason"] = f"run_cell returned no finite accuracy (got {acc!r})"
    elif not out.get("reason"):
        out["reason"] = "the trainer marked the cell failed without a reason"
    return out


# ---------------------------------------------------------------------------------------------- local
_WORKER_STATE: dict[str, Any] = {}


def _init_worker(data_cfg: dict, base_dir: str, threads: int) -> None:
    # Ctrl-C goes to the whole process group; only the driver handles it (and ends the workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)
    _WORKER_STATE.update(data_cfg=data_cfg, base_dir=base_dir, domains=None)


def _worker_domains() -> dict:
    if _WORKER_STATE.get("domains") is None:
        from adapt.domains import load_domains

        _WORKER_STATE["domains"] = load_domains(_WORKER_STATE["data_cfg"], _WORKER_STATE["base_dir"])
    return _WORKER_STATE["domains"]


def _pool_task(cell: Cell, device: str | None) -> dict:
    domains = _worker_domains()
    # A worker process reads the data files itself, possibly well after the run was planned: if they changed
    # on disk meanwhile, its arrays are not the ones the cell's key names, and the cell must fail, not record
    # results on other data under that key. (Fingerprints are cached per domain: one hash per worker.)
    for role, name, expected in (("source", cell.source, cell.source_fingerprint),
                                 ("target", cell.target, cell.target_fingerprint)):
        if expected and domains[name].fingerprint() != expected:
            return failed_result(DataError(
                f"{role} domain '{name}' changed on disk since the run was planned (fingerprint "
                f"{domains[name].fingerprint()}, planned {expected}); rerun to plan on the new data"))
    return compute_cell(cell, domains[cell.source], domains[cell.target], device)


class LocalExecutor:
    """In-process (``workers == 1``, or any GPU device) or a spawned process pool of ``workers``."""

    name = "local"

    def __init__(self, domains: Mapping, data_cfg: Mapping, base_dir: str | Path, *,
                 workers: int | None = None, device: str = "cpu", device_override: str | None = None,
                 threads: int | None = None, task: Callable[[Cell, str | None], dict] | None = None):
        self.domains = domains
        # What a pool worker runs per cell (a module-level function: it is pickled by reference).
        self.task = task or _pool_task
        self.data_cfg = dict(data_cfg)
        self.base_dir = str(base_dir)
        self.device = device
        self.device_override = device_override
        on_gpu = device.startswith("cuda")
        self.workers = 1 if on_gpu else max(1, workers if workers is not None else min(cpu_count(), 2))
        self.threads = threads or max(1, cpu_count() // self.workers)

    def describe(self) -> dict:
        return {"executor": self.name, "workers": self.workers, "device": self.device,
                "threads_per_worker": self.threads}

    def run(self, cells: Sequence[Cell], on_result: OnResult) -> None:
        if not cells:
            return
        if self.workers == 1 or len(cells) == 1:
            self._run_inline(cells, on_result)
        else:
            self._run_pool(cells, on_result, min(self.workers, len(cells)))

    def _run_inline(self, cells, on_result) -> None:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for cell in cells:
                result = compute_cell(cell, self.domains[cell.source], self.domains[cell.target],
                                      self.device_override)
                on_result(cell, result)
        finally:
            torch.set_num_threads(before)

    def _run_pool(self, cells, on_result, workers: int) -> None:
        """Keep ``workers + 1`` cells in flight (so a dead worker takes few cells with it).

        When a worker dies (killed, out of memory, a crash in C code), every cell in flight is lost with it
        and which one did it is unknown. Those cells become suspects and run again one at a time in a fresh
        pool: a suspect that kills its worker alone is recorded as failed; the others complete normally.
        """
        import collections
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        queue = collections.deque(cells)
        suspects: collections.deque = collections.deque()
        pending: dict = {}
        pool = None
        broken = False
        in_flight = workers + 1

        def new_pool():
            return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker,
                                       initargs=(self.data_cfg, self.base_dir, self.threads))

        try:
            while queue or suspects or pending:
                if broken and not pending:  # every future of a broken pool has failed: start afresh
                    pool.shutdown(wait=True)
                    pool, broken = None, False
                if pool is None:
                    pool = new_pool()
                if broken:
                    pass  # wait for the broken pool's remaining futures to fail
                elif suspects:
                    if not pending:  # drained: run the next suspect alone
                        cell = suspects.popleft()
                        pending[pool.submit(self.task, cell, self.device_override)] = (cell, True)
                else:
                    while queue and len(pending) < in_flight:
                        cell = queue.popleft()
                        pending[pool.submit(self.task, cell, self.device_override)] = (cell, False)
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    cell, alone = pending.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        if not alone:
                            suspects.append(cell)
                            continue
                        result = failed_result(RuntimeError(
                            "the worker process died running this cell (killed, out of memory or crashed)"))
                    except Exception as exc:  # noqa: BLE001 - e.g. a result that does not pickle
                        result = failed_result(exc)
                    on_result(cell, result)
        except BaseException:
            if pool is not None:
                _terminate_pool(pool)
            raise
        if pool is not None:
            pool.shutdown(wait=True)


def _terminate_pool(pool) -> None:
    processes = list(getattr(pool, "_processes", {}).values())  # no public API for this before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        try:
            proc.terminate()
        except Exception:  # noqa: BLE001 - already gone
            pass
    for proc in processes:
        proc.join(timeout=5)


# ---------------------------------------------------------------------------------------------- ray
def _ray_task(cell: Cell, source, target, device: str | None, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    return compute_cell(cell, _writable(source), _writable(target), device)


def _writable(domain):
    """Arrays from Ray's object store are read-only views; give the trainer private copies."""
    import copy

    import numpy as np

    if all(getattr(getattr(domain, a, None), "flags", None) is None or getattr(domain, a).flags.writeable
           for a in ("X", "y", "X_test", "y_test")):
        return domain
    out = copy.copy(domain)
    for attr in ("X", "y", "X_test", "y_test"):
        value = getattr(domain, attr)
        if isinstance(value, np.ndarray) and not value.flags.writeable:
            setattr(out, attr, value.copy())
    return out


class RayExecutor:
    """One Ray task per cell, on the cluster at ``address`` or on a local instance started for the run.

    ``gpus_per_cell`` (``None``: 1 when the cluster has GPUs and the config does not ask for CPU, else 0)
    and ``cpus_per_cell`` become the tasks' ``num_gpus``/``num_cpus``; a cell with no GPU runs on CPU even
    on a GPU node (its device is ``cpu`` unless ``--device`` says otherwise), so Ray's accounting holds.
    """

    name = "ray"

    def __init__(self, domains: Mapping, *, address: str | None = None, workers: int | None = None,
                 cpus_per_cell: float = 1, gpus_per_cell: float | None = None, config_device: str = "auto",
                 device_override: str | None = None):
        self.domains = domains
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.workers = workers
        self.cpus_per_cell = cpus_per_cell
        self.gpus_per_cell = gpus_per_cell
        self.config_device = config_device
        self.device_override = device_override
        self._info: dict = {}

    def describe(self) -> dict:
        return {"executor": self.name, "address": self.address, "cpus_per_cell": self.cpus_per_cell,
                "gpus_per_cell": self.gpus_per_cell, **self._info}

    def run(self, cells: Sequence[Cell], on_result: OnResult) -> None:
        if not cells:
            return
        import ray

        started = False
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
            started = True
        try:
            self._run(ray, cells, on_result)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray, cells, on_result) -> None:
        resources = ray.cluster_resources()
        gpus = self.gpus_per_cell
        if gpus is None:
            gpus = 1 if resources.get("GPU", 0) > 0 and self.config_device != "cpu" else 0
        device = self.device_override or ("cuda" if gpus > 0 else "cpu")
        threads = max(1, int(self.cpus_per_cell))
        self._info = {"gpus_per_cell": gpus, "device": device, "cluster_cpus": resources.get("CPU", 0),
                      "cluster_gpus": resources.get("GPU", 0)}
        names = sorted({c.source for c in cells} | {c.target for c in cells})
        refs = {name: ray.put(self.domains[name]) for name in names}
        task = ray.remote(_ray_task).options(num_cpus=self.cpus_per_cell, num_gpus=gpus)
        pending = {task.remote(c, refs[c.source], refs[c.target], device, threads): c for c in cells}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.5)
                for ref in ready:
                    cell = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a worker crash or a task that did not run
                        result = failed_result(exc)
                    on_result(cell, result)
        except BaseException:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished
                    pass
            raise


EXECUTORS = ("local", "ray")
