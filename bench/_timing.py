"""Shared timing protocol for the benches (issue #7): ratios measured side by side, in one process, one run.

These machines are noisy, so an absolute time from one run says little; a *ratio* of two things measured in
the same rounds says more. The protocol:

1. every variant runs ``warmup`` times first (imports, allocator, thread pool, autograd caches);
2. then ``reps`` (>= 5) rounds; in each round every variant runs once, in an order rotated by one each round
   (round ``r`` starts with variant ``r mod k``), so no variant always runs first or right after another;
   ``gc.collect()`` before each timed call, host clock ``time.perf_counter`` around it, and
   ``torch.cuda.synchronize()`` before reading the clock when a CUDA device is in use; the process's CPU
   time (``time.process_time``) is read alongside;
3. the figure for a variant is the median of its ``reps`` times; a comparison ``A / B`` is the median over
   rounds of the *paired* per-round ratio ``t_A(r) / t_B(r)`` (both measured seconds apart), reported with
   its min–max over rounds;
4. ``aa_control``: the baseline is also timed a second time per round under another name; its ratio to the
   baseline (ideally 1.00) is the noise floor — a difference between variants smaller than that spread is
   noise (METHOD.md: "time the same version twice").

Wall time is the figure. On a shared, loaded machine it also counts the time a process waits for a core;
with one compute thread the CPU time does not, so ``kind="cpu"`` ratios estimate what a quiet machine's wall
clock would show (they miss waiting on the GPU: use wall time there).

:func:`machine_info` describes where it ran (cores, CPU model from ``/proc/cpuinfo``, torch, date, commit),
:func:`markdown_table` prints rows for bench/RESULTS.md.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MIN_REPS = 5
AA_SUFFIX = " (again)"


# ------------------------------------------------------------------------------------------------ timing
@dataclass
class Timings:
    """Per-variant times (seconds, one per round, in round order) of one interleaved comparison."""

    times: dict[str, list[float]]
    baseline: str
    reps: int
    warmup: int
    order: list[list[str]] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def _series(self, kind: str) -> dict[str, list[float]]:
        if kind not in ("wall", "cpu"):
            raise ValueError(f"kind must be 'wall' or 'cpu', got {kind!r}")
        return self.times if kind == "wall" else self.cpu

    def median(self, name: str, kind: str = "wall") -> float:
        return statistics.median(self._series(kind)[name])

    def ratios(self, name: str, over: str | None = None, kind: str = "wall") -> list[float]:
        """Per-round paired ratios ``t_name(r) / t_over(r)`` (``over`` defaults to the baseline)."""
        series = self._series(kind)
        return [a / b for a, b in zip(series[name], series[over or self.baseline])]

    def ratio(self, name: str, over: str | None = None, kind: str = "wall") -> float:
        """Median over rounds of the paired ratio."""
        return statistics.median(self.ratios(name, over, kind))

    def ratio_range(self, name: str, over: str | None = None, kind: str = "wall") -> tuple[float, float]:
        r = self.ratios(name, over, kind)
        return min(r), max(r)

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "reps": self.reps, "warmup": self.warmup, "times": self.times,
                "cpu_times": self.cpu, "medians": {k: self.median(k) for k in self.times},
                "ratios_vs_baseline": {k: self.ratio(k) for k in self.times},
                "cpu_ratios_vs_baseline": {k: self.ratio(k, kind="cpu") for k in self.cpu},
                "order": self.order}


def _sync() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes (gc collected first; device synchronised before both clock reads)."""
    return time_call2(fn)[0]


def time_call2(fn: Callable[[], object]) -> tuple[float, float]:
    """``(wall seconds, process CPU seconds)`` of one call of ``fn`` (as :func:`time_call`)."""
    gc.collect()
    _sync()
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t0, time.process_time() - c0


def interleaved(variants: Mapping[str, Callable[[], object]], *, baseline: str | None = None, reps: int = 7,
                warmup: int = 1, aa_control: bool = True, log: Callable[[str], None] | None = None,
                min_reps: int = MIN_REPS) -> Timings:
    """Time ``variants`` (name → zero-argument callable doing one unit of work) side by side.

    See the module docstring for the protocol. ``baseline`` (default: the first variant) is what ratios are
    taken against; with ``aa_control`` it is timed twice per round, the second time as
    ``"<baseline> (again)"``.
    """
    if reps < min_reps:
        raise ValueError(f"reps must be >= {min_reps} (a median of at least {min_reps} rounds), got {reps}")
    if not variants:
        raise ValueError("no variants to time")
    fns = dict(variants)
    baseline = baseline or next(iter(fns))
    if baseline not in fns:
        raise ValueError(f"baseline {baseline!r} is not one of {list(fns)}")
    if aa_control:
        fns[baseline + AA_SUFFIX] = fns[baseline]
    names = list(fns)
    for name in names[: len(names) - (1 if aa_control else 0)]:
        for _ in range(warmup):
            t = time_call(fns[name])
            if log:
                log(f"  warm-up {name}: {t:.3f} s")
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    order: list[list[str]] = []
    k = len(names)
    for r in range(reps):
        this = [names[(r + i) % k] for i in range(k)]
        order.append(this)
        for name in this:
            wall, cpu_s = time_call2(fns[name])
            times[name].append(wall)
            cpu[name].append(cpu_s)
        if log:
            log(f"  round {r + 1}/{reps}: " + ", ".join(f"{n} {times[n][-1]:.3f}s (cpu {cpu[n][-1]:.3f})"
                                                       for n in names))
    return Timings(times=times, baseline=baseline, reps=reps, warmup=warmup, order=order, cpu=cpu)


# ------------------------------------------------------------------------------------------------ imports
def hide_broken_torchvision() -> bool:
    """Make a torchvision that cannot be imported look absent; returns True when it was hidden.

    pytorch-adapt's package ``__init__``s reach torchmetrics, which imports torchvision when it is installed;
    a torchvision built for another torch fails there ("operator torchvision::nms does not exist") and takes
    every pytorch-adapt import down with it. The benches need no torchvision: a broken one is replaced by
    ``None`` in ``sys.modules`` (so ``import torchvision`` raises ImportError and torchmetrics treats it as
    absent). A working torchvision is left alone.
    """
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"] is None
    try:
        import torchvision  # noqa: F401
        return False
    except Exception:  # noqa: BLE001 - ImportError, RuntimeError from a mismatched build, ...
        for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            sys.modules.pop(key, None)
        sys.modules["torchvision"] = None  # type: ignore[assignment]
        return True


# ------------------------------------------------------------------------------------------------ context
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("+dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def _loadavg() -> str | None:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return None


def machine_info() -> dict:
    """Where a figure was measured: cores, CPU model, torch (version, threads, CUDA device), date, commit."""
    import torch

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": git_commit(),
        "loadavg": _loadavg(),
        "cuda": None,
    }
    if torch.cuda.is_available():
        info["cuda"] = {"device": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                        "capability": ".".join(map(str, torch.cuda.get_device_capability(0)))}
    try:
        import importlib.metadata as md

        info["pytorch_adapt"] = md.version("pytorch-adapt")
    except Exception:  # noqa: BLE001 - optional
        info["pytorch_adapt"] = None
    return info


def describe_machine(info: Mapping) -> str:
    cuda = info.get("cuda")
    gpu = f", GPU {cuda['device']} (CUDA {cuda['cuda']})" if cuda else ", no GPU"
    return (f"{info['cores']} cores ({info['cpu']}), torch {info['torch']} ({info['torch_threads']} threads)"
            f"{gpu}, Python {info['python']}, {info['date']}, commit {info.get('commit')}, "
            f"load average {info.get('loadavg')}")


# ------------------------------------------------------------------------------------------------ output
def markdown_table(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.3f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_json(path: str | Path, payload: Mapping) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    tmp.replace(path)


def eprint(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


_GRL = None


def grad_reverse(x, coeff: float):
    """The bare loops' gradient reversal (identity forward, −coeff·g backward), written independently of
    :mod:`adapt.losses` so the benches compare against plain PyTorch. torch is imported on first use, after a
    bench has had the chance to call :func:`hide_broken_torchvision`."""
    global _GRL
    if _GRL is None:
        import torch

        class GradReverse(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, coeff):
                ctx.coeff = coeff
                return x.view_as(x)

            @staticmethod
            def backward(ctx, g):
                return -ctx.coeff * g, None

        _GRL = GradReverse
    return _GRL.apply(x, coeff)
