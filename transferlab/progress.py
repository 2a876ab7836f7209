"""Progress of a running matrix: cells done/failed/remaining with an ETA (a tqdm bar on a terminal, log lines
otherwise)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence

from adapt.cells import Cell
from .store import STATUS_OK


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
