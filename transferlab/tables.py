"""Console tables: per (method, budget) summaries of records and a plain aligned text table."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

from .store import STATUS_OK


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
