"""Shared timing protocol for the benches (issue #7): ratios measured side by side, in one process, in one run.

These machines are noisy, so an absolute time from one run says little; a *ratio* of two things measured in
the same rounds says more. The protocol:

1. every variant runs ``warmup`` times first (imports, allocator, thread pool, autograd caches);
2. then ``reps`` (>= 5) rounds; in each round every variant runs once, in an order rotated by one each round
   (round ``r`` starts with variant ``r mod k``), so no variant always runs first or right after another;
   ``gc.collect()`` before each timed call, host clock ``time.perf_counter`` around it, and
   ``torch.cuda.synchronize()`` before reading the clock when a CUDA device is in use;
3. the figure for a variant is the median of its ``reps`` times; a comparison ``A / B`` is the median over
   rounds of the *paired* per-round ratio ``t_A(r) / t_B(r)`` (both measured seconds apart), reported with
   its min–max over rounds;
4. ``aa_control``: the baseline is also timed a second time per round under another name; its ratio to the
   baseline (ideally 1.00) is the noise floor — a difference between variants smaller than that spread is
   noise (METHOD.md: "time the same version twice").

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

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def ratios(self, name: str, over: str | None = None) -> list[float]:
        """Per-round paired ratios ``t_name(r) / t_over(r)`` (``over`` defaults to the baseline)."""
        ref = self.times[over or self.baseline]
        return [a / b for a, b in zip(self.times[name], ref)]

    def ratio(self, name: str, over: str | None = None) -> float:
        """Median over rounds of the paired ratio."""
        return statistics.median(self.ratios(name, over))

    def ratio_range(self, name: str, over: str | None = None) -> tuple[float, float]:
        r = self.ratios(name, over)
        return min(r), max(r)

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "reps": self.reps, "warmup": self.warmup, "times": self.times,
                "medians": {k: self.median(k) for k in self.times},
                "ratios_vs_baseline": {k: self.ratio(k) for k in self.times}, "order": self.order}


def _sync() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes (gc collected first; device synchronised before both clock reads)."""
    gc.collect()
    _sync()
    t0 = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t0


def interleaved(variants: Mapping[str, Callable[[], object]], *, baseline: str | None = None, reps: int = 7,
                warmup: int = 1, aa_control: bool = True, log: Callable[[str], None] | None = None,
                min_reps: int = MIN_REPS) -> Timings:
    """Time ``variants`` (name → zero-argument callable doing one unit of work) side by side.

    See the module docstring for the protocol. ``baseline`` (default: the first variant) is what ratios are
    taken against; with ``aa_control`` it is timed twice per round, the second time as
    ``"<baseline> (again)"``.
    """
    if reps < min_reps:
        raise ValueError(f"reps must be >= {min_reps} (median of at least {min_reps} repetitions), got {reps}")
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
    order: list[list[str]] = []
    k = len(names)
    for r in range(reps):
        this = [names[(r + i) % k] for i in range(k)]
        order.append(this)
        for name in this:
            times[name].append(time_call(fns[name]))
        if log:
            log(f"  round {r + 1}/{reps}: " + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in names))
    return Timings(times=times, baseline=baseline, reps=reps, warmup=warmup, order=order)


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
            f"{gpu}, Python {info['python']}, {info['date']}, commit {info.get('commit')}")


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
